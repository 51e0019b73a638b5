package charts_test

import (
	"strings"
	"testing"

	"poolguard.dev/poolguard/charts"
)

// TestPluginTimeoutAgainstGracePeriod: the chart refuses to render when
// the CNI plugin's timeout is more than half of the garbage collector's
// grace period (the collector could free the addresses of an ADD and its
// retry still running), or the grace period is below the collector's
// minimum, naming both values; the defaults and values at the limit
// render, and each poolguard-ipam plugin of cni.networkConfig gets the
// timeout and the grace period to check it against.
func TestPluginTimeoutAgainstGracePeriod(t *testing.T) {
	withPlugin := func(set ...string) []string { return append(append([]string{}, networkConfigSet...), set...) }
	for _, tc := range []struct {
		name string
		set  []string
		want []string // in the error, all of them
	}{
		{"default timeout over a short grace", []string{"allocator.gc.gracePeriod=45s"},
			[]string{"cni.timeout (30s) must be at most half of allocator.gc.gracePeriod (45s)", "at most 22s", "at least 1m0s"}},
		{"raised timeout over the default grace", []string{"cni.timeout=3m"},
			[]string{"cni.timeout (3m)", "allocator.gc.gracePeriod (5m)", "at least 6m0s"}},
		{"a plugin's own timeout", withPlugin("allocator.gc.gracePeriod=10s", "cni.networkConfig.plugins[0].ipam.timeout=6s"),
			[]string{"cni.networkConfig.plugins[0].ipam.timeout (6s)", "allocator.gc.gracePeriod (10s)"}},
		{"grace below the minimum", []string{"allocator.gc.gracePeriod=5s", "cni.timeout=1s"},
			[]string{"allocator.gc.gracePeriod (5s) is below the minimum 10s", "cni.timeout"}},
		{"a plugin's timeout that is no duration", withPlugin("cni.networkConfig.plugins[0].ipam.timeout=soon"),
			[]string{"cni.networkConfig.plugins[0].ipam.timeout", `"soon"`, "not a duration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Set: tc.set})
			if err == nil {
				t.Fatalf("--set %v rendered; want a refusal", tc.set)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}

	// Accepted: the defaults, exactly half, compound durations, and no
	// check at all when poolguard does not allocate (no collector runs).
	for _, set := range [][]string{
		nil,
		{"allocator.gc.gracePeriod=1m", "cni.timeout=30s"},
		{"allocator.gc.gracePeriod=1m30s", "cni.timeout=45000ms"},
		withPlugin("allocator.gc.gracePeriod=10s", "cni.networkConfig.plugins[0].ipam.timeout=5s"),
		{"allocator.enabled=false", "allocator.gc.gracePeriod=1s"},
		{"mode=calico", "allocator.gc.gracePeriod=1s"},
	} {
		render(t, set...)
	}

	if ipam := pluginIPAM(t, render(t, networkConfigSet...)); ipam["timeout"] != "30s" || ipam["gcGracePeriod"] != "5m" {
		t.Errorf("defaults: ipam = %v, want timeout 30s (cni.timeout) and gcGracePeriod 5m (allocator.gc.gracePeriod)", ipam)
	}
	// A plugin's own timeout is kept; the grace period is always the
	// collector's.
	ipam := pluginIPAM(t, render(t, withPlugin("cni.timeout=20s", "allocator.gc.gracePeriod=2m",
		"cni.networkConfig.plugins[0].ipam.timeout=10s", "cni.networkConfig.plugins[0].ipam.gcGracePeriod=1h")...))
	if ipam["timeout"] != "10s" || ipam["gcGracePeriod"] != "2m" {
		t.Errorf("ipam = %v, want the plugin's own timeout 10s and gcGracePeriod 2m", ipam)
	}
}
