package charts_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"poolguard.dev/poolguard/charts"
)

// pendingFlags are flags the chart passes for a feature whose binary side
// another change is still landing. The test fails once the binary defines
// one, so the entry is removed the moment it can be.
// Empty now: --allocator-controllers, the last one, has landed.
var pendingFlags = map[string]string{}

// TestChartFlagsExistInBinaries builds poolguard-webhook and
// poolguard-cni-install and checks that every flag the chart's Deployment
// and DaemonSet pass is one the binary defines: an unknown flag is a
// crash-loop on every node.
func TestChartFlagsExistInBinaries(t *testing.T) {
	dir := t.TempDir()
	defined := map[string]map[string]bool{}
	for name, pkg := range map[string]string{"poolguard-webhook": "./webhook/cmd/poolguard-webhook", "poolguard-cni-install": "./cni/cmd/poolguard-cni-install"} {
		bin := filepath.Join(dir, name)
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir = charts.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
		usage, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits 2 after printing
		defined[name] = map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(usage), -1) {
			defined[name][m[1]] = true
		}
		if len(defined[name]) == 0 {
			t.Fatalf("%s -h listed no flags:\n%s", name, usage)
		}
	}
	for flag, bin := range pendingFlags {
		if defined[bin][flag] {
			t.Errorf("%s now defines --%s: remove it from pendingFlags in charts/flags_test.go", bin, flag)
		}
	}
	check := func(t *testing.T, bin string, args []string) {
		for _, a := range args {
			flag, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if !defined[bin][flag] && pendingFlags[flag] != bin {
				t.Errorf("the chart passes --%s, which %s does not define", flag, bin)
			}
		}
	}
	for _, set := range [][]string{nil, {"certificates.mode=internal"}, {"webhook.enforcement=warn", "allocator.enabled=false"}, networkConfigSet} {
		r := render(t, set...)
		check(t, "poolguard-webhook", deployment(t, r).Spec.Template.Spec.Containers[0].Args)
		if o := r.find("DaemonSet", cniName); o != nil {
			var ds appsv1.DaemonSet
			decodeStrict(t, o, &ds)
			check(t, "poolguard-cni-install", ds.Spec.Template.Spec.Containers[0].Args)
		}
	}
}
