package poolctl_test

import (
	"fmt"
	"testing"

	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
	"poolguard.dev/poolguard/policy"
)

// BenchmarkDrift times the pure part of drift -A (Drift over pods already
// read) at two sizes side by side: what grows with the pods and the
// pools, per pod. cpu-µs/pod is the process's CPU time, the collector's
// included, which a busy machine distorts less than the wall time.
//
//	go test ./cmd/kubectl-poolguard/poolctl -run '^$' -bench 'Drift$'
func BenchmarkDrift(b *testing.B) {
	for _, size := range []struct{ pools, namespaces, pods int }{{10, 100, 1000}, {1000, 1000, 10000}} {
		for _, mode := range []struct {
			name  string
			rules policy.Rules
		}{{"native", policy.Rules{}}, {"calico", policy.Rules{PinDefaults: true}}} {
			w := newWorld(mode.rules, size.pools, size.namespaces, size.pods)
			b.Run(fmt.Sprintf("%s/pools=%d/pods=%d", mode.name, size.pools, size.pods), func(b *testing.B) {
				b.ReportAllocs()
				var r poolctl.DriftReport
				cpu := processCPU(b)
				for b.Loop() {
					r = poolctl.Drift(w.pods, w.namespaces, w.index, mode.rules)
				}
				perPod := float64(b.N * len(w.pods))
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/perPod/1e3, "µs/pod")
				b.ReportMetric(float64(processCPU(b)-cpu)/perPod/1e3, "cpu-µs/pod")
				b.ReportMetric(float64(len(r.Findings)), "findings")
			})
		}
	}
}
