package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/test/bench"
	"poolguard.dev/poolguard/test/harness"
)

// Benchmark scale: ADDs per concurrency level, and the cluster sizes of
// the growth ratio.
const (
	benchADDs       = 320
	benchSmallState = 100
	benchLargeState = 10000
	benchRatioADDs  = 300
)

// benchRun is one measured series.
type benchRun struct {
	name      string
	latencies []time.Duration
	elapsed   time.Duration
	failed    int
	// pluginCPU is the plugin processes' CPU time; server the API
	// server's and etcd's during the run.
	pluginCPU time.Duration
	server    bench.CPU
}

// perADD returns a CPU time per successful ADD in ms.
func (r benchRun) perADD(d time.Duration) string {
	if len(r.latencies) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000/float64(len(r.latencies)))
}

func (r benchRun) pct(q float64) time.Duration {
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

func (r benchRun) rate() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// runProcs runs n invocations of a command with `conc` in flight, timing
// each process from start to exit.
func runProcs(name string, n, conc int, mk func(i int) *exec.Cmd) benchRun {
	r := benchRun{name: name}
	procs, perr := bench.FindProcesses()
	var before bench.CPU
	if perr == nil {
		before = procs.Sample()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cmd := mk(i)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				t0 := time.Now()
				err := cmd.Run()
				d := time.Since(t0)
				mu.Lock()
				if cmd.ProcessState != nil {
					r.pluginCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				}
				if err != nil {
					r.failed++
					if r.failed == 1 {
						fmt.Fprintf(os.Stderr, "%s: %v: %s\n", name, err, out.Bytes())
					}
				} else {
					r.latencies = append(r.latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	r.elapsed = time.Since(start)
	if perr == nil {
		r.server = procs.Sample().Sub(before)
	}
	return r
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// BenchmarkADD prints, in one run, two tables (each a sub-benchmark; run
// one alone with -bench 'ADD/variants'):
//
//   - vs-host-local: ADD latency p50/p99 and ADDs/s of the poolguard-ipam
//     binary at 1, 8 and 32 concurrent processes on one node against the
//     local API server, the reference host-local plugin (v1.9.1,
//     bin/host-local, files on local disk) as the floor, and the ratio of
//     poolguard's ADD latency with 10,000 versus 100 existing allocations.
//   - variants: the plugin configurations of benchVariants side by side on
//     the same churn, and each one's ratios to the first.
//
// The numbers are printed, never asserted.
func BenchmarkADD(b *testing.B) {
	createNamespace(b, "bench", nil)
	createPool(b, "bench-pool", "198.18.128.0/17", func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
	b.Run("vs-host-local", benchVsHostLocal)
	b.Run("variants", benchConfigVariants)
}

// benchVsHostLocal: see BenchmarkADD.
func benchVsHostLocal(b *testing.B) {
	hostLocal := filepath.Join(harness.BinDir(), "host-local")
	if _, err := os.Stat(hostLocal); err != nil {
		b.Fatalf("%s not found: run 'make host-local' (or 'make bench', which builds it)", hostLocal)
	}
	ctx := context.Background()
	for _, n := range []string{"bench-node", "ratio-small-0", "ratio-large-0"} {
		createNode(b, n, nil)
	}
	ann := frozen([]string{"bench-pool"})
	total := 3*benchADDs + 2*benchRatioADDs
	jobs := createPods(b, "bench", "bench", []string{"bench-node"}, total, ann)
	podIdx := 0
	pgCmd := func(node string) func(int) *exec.Cmd {
		return func(int) *exec.Cmd {
			// Workers call this concurrently: take the next pod under a
			// lock.
			benchMu.Lock()
			j := jobs[podIdx]
			podIdx++
			benchMu.Unlock()
			c := call{Cmd: "ADD", ContainerID: j.ctr, Pod: j.pod, Conf: netConf{Node: node}}
			return c.command(ctx)
		}
	}
	dataDir := b.TempDir()
	hlConf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "bench-hl", "type": "host-local",
		"ipam": map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": [][]map[string]string{{{"subnet": "198.19.0.0/16"}}}},
	})
	hlCmd := func(tag string) func(int) *exec.Cmd {
		return func(i int) *exec.Cmd {
			cmd := exec.CommandContext(ctx, hostLocal)
			cmd.Env = []string{"CNI_COMMAND=ADD", fmt.Sprintf("CNI_CONTAINERID=%s-%d", tag, i), "CNI_NETNS=/var/run/netns/bench",
				"CNI_IFNAME=eth0", "CNI_PATH=" + harness.BinDir(), "PATH=/usr/bin:/bin"}
			cmd.Stdin = bytes.NewReader(hlConf)
			return cmd
		}
	}

	for i := 0; i < b.N; i++ {
		// Growth: the same ADDs, each on a node of its own that starts
		// empty, with benchSmallState allocations in the cluster, then
		// with benchLargeState; only the cluster differs.
		if i == 0 {
			fillOtherNodes(b, "small", benchSmallState)
		}
		settle()
		small := runProcs(fmt.Sprintf("poolguard-ipam  c=1, %d allocs", benchSmallState), benchRatioADDs, 1, pgCmd(fmt.Sprintf("ratio-small-%d", i)))
		var rows []benchRun
		for _, conc := range []int{1, 8, 32} {
			rows = append(rows, runProcs(fmt.Sprintf("host-local      c=%-2d", conc), benchADDs, conc, hlCmd(fmt.Sprintf("hl%d-%d", i, conc))))
			rows = append(rows, runProcs(fmt.Sprintf("poolguard-ipam  c=%-2d", conc), benchADDs, conc, pgCmd("bench-node")))
		}
		if i == 0 {
			fillOtherNodes(b, "large", benchLargeState-benchSmallState-benchRatioADDs-3*benchADDs)
		}
		settle()
		large := runProcs(fmt.Sprintf("poolguard-ipam  c=1, %dk allocs", benchLargeState/1000), benchRatioADDs, 1, pgCmd(fmt.Sprintf("ratio-large-%d", i)))
		rows = append(rows, small, large)

		fmt.Printf("\nADD through the plugin binary, one node, local kube-apiserver (%d ADDs per row)\n", benchADDs)
		printRuns(rows)
		hl32, pg32 := rows[4], rows[5]
		fmt.Printf("\nat 32 concurrent: poolguard-ipam does %.0f%% of host-local's ADDs/s, p99 %s ms\n", 100*pg32.rate()/hl32.rate(), ms(pg32.pct(0.99)))
		fmt.Printf("latency ratio, 10k vs 100 existing allocations: p50 %.2f, p99 %.2f\n",
			float64(large.pct(0.5))/float64(small.pct(0.5)), float64(large.pct(0.99))/float64(small.pct(0.99)))
		if i+1 < b.N {
			b.Fatal("run with -benchtime 1x: each run consumes pre-created pods")
		}
	}
}

// printRuns prints measured series as one table.
func printRuns(rows []benchRun) {
	fmt.Printf("%-34s %8s %8s %8s %6s | CPU ms per call: %7s %9s %6s\n", "plugin", "p50 ms", "p99 ms", "calls/s", "failed", "plugin", "apiserver", "etcd")
	for _, r := range rows {
		fmt.Printf("%-34s %8s %8s %8.1f %6d |                  %7s %9s %6s\n", r.name, ms(r.pct(0.5)), ms(r.pct(0.99)), r.rate(), r.failed,
			r.perADD(r.pluginCPU), r.perADD(r.server.APIServer), r.perADD(r.server.Etcd))
	}
}

// settle waits for the API server and etcd to go quiet.
func settle() {
	if procs, err := bench.FindProcesses(); err == nil {
		procs.Settle(30 * time.Second)
	}
}

// benchVariant is one configuration of the plugin that BenchmarkADD's
// variants table measures beside the others.
type benchVariant struct {
	name string
	// conf turns the base configuration (the node's name only) into the
	// variant's.
	conf func(*netConf)
}

// benchVariants are the configurations measured side by side, on the same
// churn; the first is the baseline the others' ratios are against. To
// compare another, add a line.
var benchVariants = []benchVariant{
	{"history and cooldown off", func(c *netConf) { c.Cooldown = "0s" }},
	{"cooldown on (5m)", func(c *netConf) { c.Cooldown = "5m" }},
	{"history on", func(c *netConf) { c.Cooldown, c.History = "0s", true }},
	{"history and cooldown on", func(c *netConf) { c.Cooldown, c.History = "5m", true }},
}

// The variants' churn: rounds of ADDs, each followed by DELs of half the
// round's pods (so that blocks carry releases, as in a cluster where pods
// come and go), at one process at a time.
const (
	benchVariantRounds    = 4
	benchVariantRoundADDs = 64
)

// benchConfigVariants: see BenchmarkADD. Each variant runs on a node of
// its own that starts empty; the variants take turns, each round started
// by the next, so that a drift of the machine's load, or the cost of
// going first, spreads over all of them.
func benchConfigVariants(b *testing.B) {
	ctx := context.Background()
	// The history's recorder runs as the webhook's leader would (here in
	// this process, on the same two cores), letting the claims of the
	// "history on" variants go once recorded.
	startRecorder(b, "bench")
	ann := frozen([]string{"bench-pool"})
	type series struct {
		conf     netConf
		jobs     []job
		add, del benchRun
	}
	for i := 0; i < b.N; i++ {
		var all []*series
		for v, variant := range benchVariants {
			node := fmt.Sprintf("variant-%d-%d", i, v)
			createNode(b, node, nil)
			s := &series{conf: netConf{Node: node}, add: benchRun{name: variant.name + " ADD"}, del: benchRun{name: variant.name + " DEL"}}
			variant.conf(&s.conf)
			s.jobs = createPods(b, "bench", fmt.Sprintf("v%d", i), []string{node}, benchVariantRounds*benchVariantRoundADDs, ann)
			all = append(all, s)
		}
		cmd := func(s *series, verb string, jobs []job) func(int) *exec.Cmd {
			return func(k int) *exec.Cmd {
				j := jobs[k]
				return call{Cmd: verb, ContainerID: j.ctr, Pod: j.pod, Conf: s.conf}.command(ctx)
			}
		}
		for r := 0; r < benchVariantRounds; r++ {
			for k := range all { // each round starts with the next variant
				s := all[(k+r)%len(all)]
				round := s.jobs[r*benchVariantRoundADDs : (r+1)*benchVariantRoundADDs]
				settle()
				s.add.merge(runProcs(s.add.name, len(round), 1, cmd(s, "ADD", round)))
				gone := round[:len(round)/2]
				s.del.merge(runProcs(s.del.name, len(gone), 1, cmd(s, "DEL", gone)))
			}
		}

		fmt.Printf("\nPlugin configurations side by side: one node each, %d rounds of %d ADDs then DELs of half of them, one process at a time\n",
			benchVariantRounds, benchVariantRoundADDs)
		var rows []benchRun
		for _, s := range all {
			rows = append(rows, s.add, s.del)
		}
		printRuns(rows)
		base := all[0]
		for v, s := range all[1:] {
			fmt.Printf("%s vs %s: ADD p50 %.2f, p99 %.2f, plugin CPU %.2f; DEL p50 %.2f, p99 %.2f\n", benchVariants[v+1].name, benchVariants[0].name,
				ratio(s.add.pct(0.5), base.add.pct(0.5)), ratio(s.add.pct(0.99), base.add.pct(0.99)), ratio(s.add.pluginCPU, base.add.pluginCPU),
				ratio(s.del.pct(0.5), base.del.pct(0.5)), ratio(s.del.pct(0.99), base.del.pct(0.99)))
		}
	}
}

func ratio(x, y time.Duration) float64 { return float64(x) / float64(y) }

// merge adds another run of the same series.
func (r *benchRun) merge(o benchRun) {
	r.latencies = append(r.latencies, o.latencies...)
	r.elapsed += o.elapsed
	r.failed += o.failed
	r.pluginCPU += o.pluginCPU
	r.server.APIServer += o.server.APIServer
	r.server.Etcd += o.server.Etcd
	r.server.Self += o.server.Self
}

var benchMu sync.Mutex

// fillOtherNodes writes n allocations held by other nodes (16 of them)
// through the allocation engine, as their plugins would have: blocks,
// affinities and claims in the API server.
func fillOtherNodes(b *testing.B, tag string, n int) {
	if n <= 0 {
		return
	}
	st := kubestore.Store{Client: lean}
	pools, err := st.Pools(context.Background(), false)
	if err != nil {
		b.Fatal(err)
	}
	pool := pools.Ranges["bench-pool"]
	var wg sync.WaitGroup
	per := (n + 15) / 16
	for node := 0; node < 16; node++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &allocator.Allocator{Store: st, Node: fmt.Sprintf("bench-other-%02d", node)}
			for i := 0; i < per; i++ {
				_, err := a.Assign(context.Background(), allocator.Request{ContainerID: fmt.Sprintf("fill-%s-%d-%d", tag, node, i), IfName: "eth0",
					Pod:   allocator.PodRef{Namespace: "bench", Name: fmt.Sprintf("fill-%s-%d-%d", tag, node, i)},
					Wants: []allocator.Want{{Ranges: []allocator.Range{pool}}}})
				if err != nil {
					b.Errorf("fill: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
