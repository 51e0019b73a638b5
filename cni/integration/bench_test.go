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

// BenchmarkADD prints, in one run: ADD latency p50/p99 and ADDs/s of the
// poolguard-ipam binary at 1, 8 and 32 concurrent processes on one node
// against the local API server, the reference host-local plugin (v1.9.1,
// bin/host-local, files on local disk) as the floor, and the ratio of
// poolguard's ADD latency with 10,000 versus 100 existing allocations.
// The numbers are printed, never asserted.
func BenchmarkADD(b *testing.B) {
	hostLocal := filepath.Join(harness.BinDir(), "host-local")
	if _, err := os.Stat(hostLocal); err != nil {
		b.Fatalf("%s not found: run 'make host-local' (or 'make bench', which builds it)", hostLocal)
	}
	ctx := context.Background()
	createNamespace(b, "bench", nil)
	createPool(b, "bench-pool", "198.18.128.0/17", func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
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

	settle := func() {
		if procs, err := bench.FindProcesses(); err == nil {
			procs.Settle(30 * time.Second)
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
		fmt.Printf("%-34s %8s %8s %8s %6s | CPU ms per ADD: %7s %9s %6s\n", "plugin", "p50 ms", "p99 ms", "ADDs/s", "failed", "plugin", "apiserver", "etcd")
		for _, r := range rows {
			fmt.Printf("%-34s %8s %8s %8.1f %6d |                 %7s %9s %6s\n", r.name, ms(r.pct(0.5)), ms(r.pct(0.99)), r.rate(), r.failed,
				r.perADD(r.pluginCPU), r.perADD(r.server.APIServer), r.perADD(r.server.Etcd))
		}
		hl32, pg32 := rows[4], rows[5]
		fmt.Printf("\nat 32 concurrent: poolguard-ipam does %.0f%% of host-local's ADDs/s, p99 %s ms\n", 100*pg32.rate()/hl32.rate(), ms(pg32.pct(0.99)))
		fmt.Printf("latency ratio, 10k vs 100 existing allocations: p50 %.2f, p99 %.2f\n",
			float64(large.pct(0.5))/float64(small.pct(0.5)), float64(large.pct(0.99))/float64(small.pct(0.99)))
		if i+1 < b.N {
			b.Fatal("run with -benchtime 1x: each run consumes pre-created pods")
		}
	}
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
