package bench

import (
	"strings"
	"testing"
	"time"
)

// result is a setup's result with one run per pods/s figure, 100 pods a
// run, each run costing cpuMs of API server CPU per pod.
func result(name string, cpuMs float64, podsPerSecond ...float64) *Result {
	r := &Result{Setup: &Setup{Name: name, Label: name}}
	for _, p := range podsPerSecond {
		r.Runs = append(r.Runs, Run{
			Elapsed:   time.Duration(100 / p * float64(time.Second)),
			Latencies: make([]time.Duration, 100),
			CPU:       CPU{APIServer: time.Duration(cpuMs * 100 * float64(time.Millisecond))},
		})
	}
	return r
}

// TestTableComparesWithThePatchingNoop: the table gives every setup its
// ratio to the patching no-op, and the aims state poolguard's against
// 0.98, by throughput (median of the rounds' ratios) and by CPU.
func TestTableComparesWithThePatchingNoop(t *testing.T) {
	results := []*Result{
		result("none", 1, 800, 800, 800),
		result("noop", 2, 400, 400, 400),
		result("noop-patch", 2.5, 360, 380, 400),
		result("poolguard", 2.5, 360, 376, 300),
		result("policies", 4, 250, 250, 250),
	}
	var out strings.Builder
	PrintTable(&out, results, 100, 16)
	PrintAims(&out, results)
	text := out.String()
	header, rows := "", map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) > 0 && fields[0] == "setup":
			header = line
		case len(fields) == 12 && header != "" && rows[fields[0]] == nil:
			rows[fields[0]] = fields
		}
	}
	if !strings.Contains(header, "vs patch") {
		t.Fatalf("no \"vs patch\" column:\n%s", text)
	}
	// Column 7 is vs patch: poolguard's round ratios are 1.00, 0.99 and
	// 0.75, median 0.99; the patching no-op is 1 to itself.
	for setup, want := range map[string]string{"poolguard": "0.99", "noop-patch": "1.00", "none": "2.11", "policies": "0.66"} {
		if got := rows[setup]; len(got) < 7 || got[6] != want {
			t.Errorf("%s: vs patch = %v, want %s\n%s", setup, got, want, text)
		}
	}
	if !strings.Contains(text, "aim: poolguard >= 0.98 x the patching no-op (floor of any mutating webhook): pods/s 0.99, CPU 1.00: met") {
		t.Fatalf("aim against the patching no-op missing or wrong:\n%s", text)
	}
}
