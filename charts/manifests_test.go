package charts_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"poolguard.dev/poolguard/charts"
)

// TestManifestsInSync fails when deploy/ differs from what the chart renders:
// kubectl-apply users must get exactly what helm users get.
func TestManifestsInSync(t *testing.T) {
	want, err := charts.Manifests(charts.Helm{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(charts.ManifestsDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok && filepath.Ext(e.Name()) == ".yaml" {
			t.Errorf("deploy/%s is not generated from the chart: remove it or add it to charts.Manifests", e.Name())
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(charts.ManifestsDir(), name))
		if err != nil {
			t.Errorf("deploy/%s: %v: run 'make manifests'", name, err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("deploy/%s is out of date with charts/poolguard: run 'make manifests' and commit", name)
		}
		objs, err := charts.Decode(b)
		if err != nil || len(objs) < 10 {
			t.Errorf("deploy/%s: %d objects, err %v", name, len(objs), err)
		}
	}
}
