package scale

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"time"
)

// PrintTable prints the two phases side by side: each measure on the
// empty cluster, at size, and the ratio, then memory and etcd per pod.
func PrintTable(out io.Writer, s Shape, pop *Population, empty, full *Measures) {
	fmt.Fprintf(out, "\nScale: %d nodes, %d namespaces, %d IPPools, %d pods (%d claims, %d blocks); %d CPUs\n\n",
		s.Nodes, s.Namespaces, s.Pools, len(pop.Pods), pop.Claims, pop.Blocks, runtime.NumCPU())
	fmt.Fprintf(out, "| measure | empty | %d pods | ratio |\n|---|---|---|---|\n", len(pop.Pods))
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	row := func(what, unit string, e, f float64) {
		r := "–"
		if e > 0 {
			r = fmt.Sprintf("%.2f", f/e)
		}
		fmt.Fprintf(out, "| %s | %.3g %s | %.3g %s | %s |\n", what, e, unit, f, unit, r)
	}
	row("admission p50 (pod create through the API server)", "ms", ms(empty.AdmitP50), ms(full.AdmitP50))
	row("admission p99", "ms", ms(empty.AdmitP99), ms(full.AdmitP99))
	row("admission throughput", "pods/s", empty.AdmitRate, full.AdmitRate)
	row("  the API server alone: pod create, no webhook called (opted-out namespace), p50", "ms", ms(empty.BareP50), ms(full.BareP50))
	row("  the API server alone: the same, p99", "ms", ms(empty.BareP99), ms(full.BareP99))
	row("handler per request: freeze (mutating)", "µs", empty.MutateUS, full.MutateUS)
	row("handler per request: validate", "µs", empty.ValidateUS, full.ValidateUS)
	row("CNI ADD p50 (plugin binary)", "ms", ms(empty.AddP50), ms(full.AddP50))
	row("CNI ADD p99", "ms", ms(empty.AddP99), ms(full.AddP99))
	row("  the API server alone: GET of a pod (watch cache), p50", "ms", ms(empty.GetPod), ms(full.GetPod))
	row("  the API server alone: list every IPPool (watch cache), p50", "ms", ms(empty.ListPools), ms(full.ListPools))
	row("who-had (kubectl poolguard)", "ms", ms(empty.WhoHad), ms(full.WhoHad))
	row("drift of one namespace (-n)", "ms", ms(empty.DriftNamespace), ms(full.DriftNamespace))
	row("drift of the cluster (-A)", "ms", ms(empty.DriftAll), ms(full.DriftAll))
	row("pool index rebuild (an IPPool changed)", "ms", ms(empty.IndexRebuild), ms(full.IndexRebuild))
	row("IPPool status reconcile (probe pool)", "ms", ms(empty.Status), ms(full.Status))
	row("IPPool status reconcile (a team pool)", "ms", 0, ms(full.StatusPopulation))
	row("GC sweep (this process, the binary's cache options)", "ms", ms(empty.Sweep), ms(full.Sweep))
	row("GC sweep CPU", "ms", ms(empty.SweepCPU), ms(full.SweepCPU))
	row("GC sweep allocations", "", float64(empty.SweepAllocs), float64(full.SweepAllocs))
	row("GC sweep bytes allocated", "MiB", mib(int64(empty.SweepBytes)), mib(int64(full.SweepBytes)))
	row("GC sweep in the leader binary (its metric, quiet minute)", "ms", empty.LeaderSweepMean*1e3, full.LeaderSweepMean*1e3)
	row("follower RSS (admission, export)", "MiB", mib(empty.FollowerRSS), mib(full.FollowerRSS))
	row("leader RSS (+ allocator controllers)", "MiB", mib(empty.LeaderRSS), mib(full.LeaderRSS))
	row("follower Go heap in use", "MiB", empty.FollowerHeap/(1<<20), full.FollowerHeap/(1<<20))
	row("leader Go heap in use", "MiB", empty.LeaderHeap/(1<<20), full.LeaderHeap/(1<<20))
	row("follower CPU at rest", "s/min", empty.FollowerIdleCPU.Seconds(), full.FollowerIdleCPU.Seconds())
	row("leader CPU at rest (sweeps included)", "s/min", empty.LeaderIdleCPU.Seconds(), full.LeaderIdleCPU.Seconds())
	row("kube-apiserver RSS, for scale", "MiB", mib(empty.APIServerRSS), mib(full.APIServerRSS))
	row("etcd RSS, for scale", "MiB", mib(empty.EtcdRSS), mib(full.EtcdRSS))

	pods := float64(full.Pods - empty.Pods)
	fmt.Fprintf(out, "\nper pod added (%d pods): follower RSS %.0f B, leader RSS %.0f B, follower heap %.0f B, leader heap %.0f B; GC sweep %.2f µs and %.1f allocations per pod\n",
		int(pods), float64(full.FollowerRSS-empty.FollowerRSS)/pods, float64(full.LeaderRSS-empty.LeaderRSS)/pods,
		(full.FollowerHeap-empty.FollowerHeap)/pods, (full.LeaderHeap-empty.LeaderHeap)/pods,
		float64(full.Sweep)/1e3/float64(full.Pods), float64(full.SweepAllocs)/float64(full.Pods))
	claims := float64(pop.Claims)
	fmt.Fprintf(out, "\netcd bytes per 1,000 pods with an address (%d claims), poolguard's objects:", pop.Claims)
	var total int64
	for _, res := range slices.Sorted(maps.Keys(full.Etcd)) {
		d := full.Etcd[res] - empty.Etcd[res]
		total += d
		fmt.Fprintf(out, " %s %.0f KiB;", res, float64(d)/claims*1000/1024)
	}
	fmt.Fprintf(out, " total %.0f KiB (the pods themselves: %.0f KiB)\n", float64(total)/claims*1000/1024, float64(full.EtcdPods-empty.EtcdPods)/pods*1000/1024)
	fmt.Fprintf(out, "\npopulation:")
	for _, st := range pop.Timings {
		fmt.Fprintf(out, " %s %d in %.1fs;", st.What, st.N, st.Took.Seconds())
	}
	fmt.Fprintln(out)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
