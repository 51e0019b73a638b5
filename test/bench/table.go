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

// PrintTable prints the results with throughput ratios to the first two
// setups (no webhook, no-op webhook), then each round's throughputs, which
// show how noisy the machine was.
func PrintTable(out io.Writer, results []*Result, pods, workers int) {
	none, noop := results[0].PodsPerSecond(), results[1].PodsPerSecond()
	fmt.Fprintf(out, "\nAdmission cost: %d rounds x %d pods per setup, %d concurrent clients, one kube-apiserver\n\n", len(results[0].Runs), pods, workers)
	fmt.Fprintf(out, "%-34s %8s %8s %8s %9s %9s   %s\n", "setup", "pods/s", "p50 ms", "p99 ms", "vs none", "vs no-op", "CPU ms/pod: apiserver etcd bench+webhook")
	for _, r := range results {
		pps := r.PodsPerSecond()
		a, e, s := r.CPUPerPod()
		fmt.Fprintf(out, "%-34s %8.1f %8.2f %8.2f %9.2f %9.2f   %20.2f %4.2f %13.2f\n", r.Setup.Label, pps, ms(r.Percentile(0.5)), ms(r.Percentile(0.99)), pps/none, pps/noop, a, e, s)
	}
	fmt.Fprintf(out, "\nper round (setup order rotates each round): pods/s (all processes' CPU ms/pod)\n")
	for _, r := range results {
		var cells []string
		for _, run := range r.Runs {
			c := run.CPU
			cells = append(cells, fmt.Sprintf("%7.1f (%4.2f)", run.PodsPerSecond(), ms(c.APIServer+c.Etcd+c.Self)/float64(len(run.Latencies))))
		}
		fmt.Fprintf(out, "%-34s %s   spread %s\n", r.Setup.Label, strings.Join(cells, " "), spread(r))
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

// PrintAims states the aims against the results: poolguard at
// least 0.9 of the no-op webhook's throughput, and above the admission
// policies'. Ratios within each round are shown too: they pair setups that
// ran seconds apart, so they are steadier than the totals on a busy machine.
func PrintAims(out io.Writer, results []*Result) {
	by := map[string]*Result{}
	for _, r := range results {
		by[r.Setup.Name] = r
	}
	pg, noop, patch, pol := by["poolguard"], by["noop"], by["noop-patch"], by["policies"]
	if pg == nil || noop == nil {
		return
	}
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	paired := func(a, b *Result) string {
		var cells []string
		for i := range a.Runs {
			cells = append(cells, fmt.Sprintf("%.2f", a.Runs[i].PodsPerSecond()/b.Runs[i].PodsPerSecond()))
		}
		return strings.Join(cells, " ")
	}
	r := pg.PodsPerSecond() / noop.PodsPerSecond()
	fmt.Fprintf(out, "\naim: poolguard >= 0.9 x no-op webhook throughput: %.2f, %s (per round: %s)\n", r, check(r >= 0.9), paired(pg, noop))
	if patch != nil {
		r := pg.PodsPerSecond() / patch.PodsPerSecond()
		fmt.Fprintf(out, "poolguard vs the patching no-op (the floor of any mutating webhook): %.2f (per round: %s)\n", r, paired(pg, patch))
	}
	if pol != nil {
		r := pg.PodsPerSecond() / pol.PodsPerSecond()
		fmt.Fprintf(out, "aim: poolguard faster than the admission policies: %.2f x, %s (per round: %s)\n", r, check(r > 1), paired(pg, pol))
	}
}
