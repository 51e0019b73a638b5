package charts_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/cni/ipam"
)

// TestCooldownValue: allocator.cooldown (default 5m) is written into every
// poolguard-ipam plugin of cni.networkConfig as ipam.cooldown, over a
// plugin's own (nodes share and borrow blocks: one value for all), and the
// plugin reads it as that duration; the schema refuses what is not a
// duration of zero or more.
func TestCooldownValue(t *testing.T) {
	withPlugin := func(set ...string) []string { return append(append([]string{}, networkConfigSet...), set...) }
	for _, tc := range []struct {
		set  []string
		want time.Duration
	}{
		{withPlugin(), 5 * time.Minute},
		{withPlugin("allocator.cooldown=0s"), 0},
		{withPlugin("allocator.cooldown=90s"), 90 * time.Second},
		{withPlugin("allocator.cooldown=1h", "cni.networkConfig.plugins[0].ipam.cooldown=1s"), time.Hour},
	} {
		var cm corev1.ConfigMap
		decodeStrict(t, render(t, tc.set...).get(t, "ConfigMap", cniConfigMap), &cm)
		var conf struct {
			Plugins []map[string]json.RawMessage `json:"plugins"`
		}
		if err := json.Unmarshal([]byte(cm.Data["10-poolguard.conflist"]), &conf); err != nil || len(conf.Plugins) != 1 {
			t.Fatalf("network configuration %q: %v", cm.Data, err)
		}
		// What the installer adds on the node, then what the plugin
		// reads.
		var ipamConf map[string]any
		if err := json.Unmarshal(conf.Plugins[0]["ipam"], &ipamConf); err != nil {
			t.Fatal(err)
		}
		ipamConf["kubeconfig"], ipamConf["nodeName"] = "/etc/cni/net.d/poolguard/poolguard-kubeconfig", "node-1"
		raw, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "pods", "type": "bridge", "ipam": ipamConf})
		c, err := ipam.ParseConfig(raw)
		if err != nil {
			t.Fatalf("--set %v: the plugin refuses the rendered configuration: %v", tc.set, err)
		}
		if c.Cooldown != tc.want {
			t.Errorf("--set %v: the plugin's cooldown is %s (ipam %v), want %s", tc.set, c.Cooldown, ipamConf, tc.want)
		}
	}
	for _, bad := range []string{"-1m", "soon", "5"} {
		_, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Set: []string{"allocator.cooldown=" + bad}})
		if err == nil || !strings.Contains(err.Error(), "cooldown") {
			t.Errorf("allocator.cooldown=%s: %v, want the schema's refusal", bad, err)
		}
	}
}
