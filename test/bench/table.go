package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Result accumulates a setup's runs over every round.
type Result struct {
	Setup *Setup
	Runs  []Run
}

// PodsPerSecond is the setup's throughput over all its runs: total pods
// over total time, so a slow round weighs what it cost.
func (r *Result) PodsPerSecond() float64 {
	var n int
	var d time.Duration
	for _, run := range r.Runs {
		n += len(run.Latencies)
		d += run.Elapsed
	}
	return float64(n) / d.Seconds()
}

// CPUPerPod is the CPU time each process spent per pod, over all runs.
func (r *Result) CPUPerPod() (apiserver, etcd, self float64) {
	var n int
	var c CPU
	for _, run := range r.Runs {
		n += len(run.Latencies)
		c.APIServer += run.CPU.APIServer
		c.Etcd += run.CPU.Etcd
		c.Self += run.CPU.Self
	}
	per := func(d time.Duration) float64 { return ms(d) / float64(n) }
	return per(c.APIServer), per(c.Etcd), per(c.Self)
}

// Percentile returns the q-th quantile (0..1) of the latencies of all runs.
func (r *Result) Percentile(q float64) time.Duration {
	var all []time.Duration
	for _, run := range r.Runs {
		all = append(all, run.Latencies...)
	}
	return Percentile(all, q)
}

// Percentile returns the q-th quantile (0..1) of ds, nearest rank.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// CPUTotalPerPod is the CPU time all processes spent per pod.
func (r *Result) CPUTotalPerPod() float64 {
	a, e, s := r.CPUPerPod()
	return a + e + s
}

// Ratio is the median, over rounds, of r's throughput over ref's in the
// same round. Setups of one round run seconds apart, so a neighbour's
// burst of load on a shared machine skews one round's ratio, not the
// median; the ratio of totals would carry it.
func (r *Result) Ratio(ref *Result) float64 {
	var rs []float64
	for i := range min(len(r.Runs), len(ref.Runs)) {
		rs = append(rs, r.Runs[i].PodsPerSecond()/ref.Runs[i].PodsPerSecond())
	}
	if len(rs) == 0 {
		return math.NaN()
	}
	slices.Sort(rs)
	if len(rs)%2 == 1 {
		return rs[len(rs)/2]
	}
	return (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
}

// CPURatio is ref's CPU per pod over r's: the throughput ratio a
// dedicated machine, where pod creation is CPU bound, would show. CPU time
// is much less disturbed by other tenants than wall time.
func (r *Result) CPURatio(ref *Result) float64 { return ref.CPUTotalPerPod() / r.CPUTotalPerPod() }

// PrintTable prints the results with throughput ratios to the first two
// setups (no webhook, no-op webhook) and to the patching no-op, where the
// CPU went, then each round's numbers, which show how noisy the machine
// was.
func PrintTable(out io.Writer, results []*Result, pods, workers int) {
	none, noop, patch := results[0], results[1], byName(results, "noop-patch")
	fmt.Fprintf(out, "\nAdmission cost: %d rounds x %d pods per setup, %d concurrent clients, one kube-apiserver\n", len(results[0].Runs), pods, workers)
	fmt.Fprintf(out, "(vs: median over rounds of the pods/s ratio within a round, vs patch: to the no-op answering with a 1-key patch;\n CPU: ms per pod of kube-apiserver, etcd, and this process = webhook + clients; by CPU: no-op's CPU per pod over the setup's)\n\n")
	fmt.Fprintf(out, "%-36s %7s %7s %7s %8s %8s %8s   %9s %5s %8s %6s   %8s\n", "setup", "pods/s", "p50 ms", "p99 ms", "vs none", "vs no-op", "vs patch", "apiserver", "etcd", "webhook+", "total", "by CPU")
	for _, r := range results {
		a, e, s := r.CPUPerPod()
		vsPatch := math.NaN()
		if patch != nil {
			vsPatch = r.Ratio(patch)
		}
		fmt.Fprintf(out, "%-36s %7.1f %7.1f %7.1f %8.2f %8.2f %8.2f   %9.2f %5.2f %8.2f %6.2f   %8.2f\n", r.Setup.Label, r.PodsPerSecond(),
			ms(r.Percentile(0.5)), ms(r.Percentile(0.99)), r.Ratio(none), r.Ratio(noop), vsPatch, a, e, s, a+e+s, r.CPURatio(noop))
	}
	fmt.Fprintf(out, "\nper round (setup order rotates each round): pods/s (CPU ms/pod, all processes)\n")
	for _, r := range results {
		var cells []string
		for _, run := range r.Runs {
			c := run.CPU
			cells = append(cells, fmt.Sprintf("%6.1f (%5.2f)", run.PodsPerSecond(), ms(c.APIServer+c.Etcd+c.Self)/float64(len(run.Latencies))))
		}
		fmt.Fprintf(out, "%-36s %s   spread %s\n", r.Setup.Label, strings.Join(cells, " "), spread(r))
	}
}

// spread is (max-min)/mean of a setup's per-round throughputs.
func spread(r *Result) string {
	lo, hi, sum := math.Inf(1), 0.0, 0.0
	for _, run := range r.Runs {
		p := run.PodsPerSecond()
		lo, hi, sum = math.Min(lo, p), math.Max(hi, p), sum+p
	}
	return fmt.Sprintf("%.0f%%", 100*(hi-lo)/(sum/float64(len(r.Runs))))
}

// byName returns the result of the setup called name, or nil.
func byName(results []*Result, name string) *Result {
	for _, r := range results {
		if r.Setup.Name == name {
			return r
		}
	}
	return nil
}

// PrintAims states the issues' aims against the results, by throughput
// (median of per-round ratios) and by CPU per pod: poolguard at least 0.9
// of the no-op webhook, ahead of the admission policies, and at least 0.98
// of the patching no-op, the floor of any webhook that mutates pods
// (issue 14: poolguard's own cost on top of answering with a patch).
func PrintAims(out io.Writer, results []*Result) {
	pg, noop, patch, pol := byName(results, "poolguard"), byName(results, "noop"), byName(results, "noop-patch"), byName(results, "policies")
	if pg == nil || noop == nil {
		return
	}
	verdict := func(t, c, aim float64) string {
		v := "NOT met"
		switch {
		case t >= aim && c >= aim:
			v = "met"
		case t >= aim || c >= aim:
			v = "met by one measure only"
		}
		return fmt.Sprintf("pods/s %.2f, CPU %.2f: %s", t, c, v)
	}
	fmt.Fprintf(out, "\naim: poolguard >= 0.9 x the no-op webhook: %s\n", verdict(pg.Ratio(noop), pg.CPURatio(noop), 0.9))
	if pol != nil {
		fmt.Fprintf(out, "aim: poolguard > the admission policies (ratio > 1): %s\n", verdict(pg.Ratio(pol), pg.CPURatio(pol), 1.0000001))
	}
	if patch != nil {
		fmt.Fprintf(out, "aim: poolguard >= 0.98 x the patching no-op (floor of any mutating webhook): %s\n", verdict(pg.Ratio(patch), pg.CPURatio(patch), 0.98))
		fmt.Fprintf(out, "the patch alone: pods/s %.2f, CPU %.2f of the no-op\n", patch.Ratio(noop), patch.CPURatio(noop))
	}
}
