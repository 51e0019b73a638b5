package charts_test

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"poolguard.dev/poolguard/charts"
)

// TestRenderHistory: the attribution history's values reach both ends: the
// webhook's flags (the recorder and its retention) and each poolguard-ipam
// plugin's configuration (the finalizer on its claims); off, the plugin
// marks nothing and the recorder only lets claims go; a retention below a
// day is refused at render, naming the value.
func TestRenderHistory(t *testing.T) {
	args := func(r rendered) []string {
		t.Helper()
		var d appsv1.Deployment
		decodeStrict(t, r.get(t, "Deployment", fullname+"-webhook"), &d)
		return d.Spec.Template.Spec.Containers[0].Args
	}
	on := render(t, networkConfigSet...)
	if a := args(on); !slices.Contains(a, "--history=true") || !slices.Contains(a, "--history-retention=168h") {
		t.Errorf("defaults: webhook args %q", a)
	}
	if h := pluginIPAM(t, on)["history"]; h != true {
		t.Errorf("defaults: ipam.history = %v, want true", h)
	}
	off := render(t, append(slices.Clone(networkConfigSet), "allocator.history.enabled=false", "allocator.history.retention=720h")...)
	if a := args(off); !slices.Contains(a, "--history=false") || !slices.Contains(a, "--history-retention=720h") {
		t.Errorf("history off: webhook args %q", a)
	}
	if h := pluginIPAM(t, off)["history"]; h != nil {
		t.Errorf("history off: ipam.history = %v, want absent", h)
	}
	_, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Set: []string{"allocator.history.retention=12h"}})
	if err == nil || !strings.Contains(err.Error(), "allocator.history.retention (12h) is below the minimum 24h") {
		t.Errorf("retention 12h: %v, want refused naming it", err)
	}
}
