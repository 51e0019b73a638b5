package installer

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestFillNetworkConfig: poolguard-ipam's per-node settings are filled in
// where absent and kept where given; other plugins are left alone; what is
// not a usable list, or does not use poolguard-ipam, is refused with a
// message that says why.
func TestFillNetworkConfig(t *testing.T) {
	const kc, node = "/etc/cni/net.d/poolguard/poolguard-kubeconfig", "worker-1"
	for _, tc := range []struct {
		name    string
		in      string
		wantErr error
		errText string
		// ipams are the expected ipam objects by plugin index (nil: no ipam).
		ipams []map[string]any
	}{
		{
			name:  "fills kubeconfig and nodeName",
			in:    `{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipam":{"type":"poolguard-ipam"}}]}`,
			ipams: []map[string]any{{"type": "poolguard-ipam", "kubeconfig": kc, "nodeName": node}},
		},
		{
			name:  "keeps explicit values",
			in:    `{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipam":{"type":"poolguard-ipam","kubeconfig":"/custom/kc","nodeName":"other","timeout":"10s"}}]}`,
			ipams: []map[string]any{{"type": "poolguard-ipam", "kubeconfig": "/custom/kc", "nodeName": "other", "timeout": "10s"}},
		},
		{
			name:  "empty and null count as absent",
			in:    `{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipam":{"type":"poolguard-ipam","kubeconfig":"","nodeName":null}}]}`,
			ipams: []map[string]any{{"type": "poolguard-ipam", "kubeconfig": kc, "nodeName": node}},
		},
		{
			name: "chained plugins untouched",
			in: `{"cniVersion":"1.0.0","name":"pods","plugins":[
				{"type":"bridge","bridge":"cni0","mtu":1450,"ipam":{"type":"poolguard-ipam"}},
				{"type":"macvlan","master":"eth1","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/16"}]]}},
				{"type":"portmap","capabilities":{"portMappings":true}}]}`,
			ipams: []map[string]any{
				{"type": "poolguard-ipam", "kubeconfig": kc, "nodeName": node},
				{"type": "host-local", "ranges": []any{[]any{map[string]any{"subnet": "10.1.0.0/16"}}}},
				nil,
			},
		},
		{
			name:    "no poolguard-ipam",
			in:      `{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"portmap"}]}`,
			wantErr: ErrNoPoolguardIPAM, errText: `network "pods"`,
		},
		{
			name:    "malformed JSON",
			in:      `{"cniVersion":"1.0.0","name":"pods","plugins":[`,
			wantErr: ErrBadNetworkConfig, errText: "unexpected end of JSON input",
		},
		{
			name:    "no name",
			in:      `{"cniVersion":"1.0.0","plugins":[{"type":"bridge","ipam":{"type":"poolguard-ipam"}}]}`,
			wantErr: ErrBadNetworkConfig, errText: "no name",
		},
		{
			name:    "no plugins",
			in:      `{"cniVersion":"1.0.0","name":"pods"}`,
			wantErr: ErrBadNetworkConfig, errText: `no "plugins" list`,
		},
		{
			name:    "empty plugins",
			in:      `{"cniVersion":"1.0.0","name":"pods","plugins":[]}`,
			wantErr: ErrBadNetworkConfig, errText: "no plugins in list",
		},
		{
			name:    "a single plugin configuration, not a list",
			in:      `{"cniVersion":"1.0.0","name":"pods","type":"bridge","ipam":{"type":"poolguard-ipam"}}`,
			wantErr: ErrBadNetworkConfig, errText: `no "plugins" list`,
		},
		{
			name:    "plugin without type",
			in:      `{"cniVersion":"1.0.0","name":"pods","plugins":[{"ipam":{"type":"poolguard-ipam"}}]}`,
			wantErr: ErrBadNetworkConfig, errText: "type",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := FillNetworkConfig([]byte(tc.in), kc, node)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("err = %v, want %v mentioning %q", err, tc.wantErr, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got, in map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if err := json.Unmarshal([]byte(tc.in), &in); err != nil {
				t.Fatal(err)
			}
			plugins, inPlugins := got["plugins"].([]any), in["plugins"].([]any)
			if len(plugins) != len(tc.ipams) {
				t.Fatalf("%d plugins, want %d", len(plugins), len(tc.ipams))
			}
			for i, p := range plugins {
				plugin, inPlugin := p.(map[string]any), inPlugins[i].(map[string]any)
				ipam, _ := plugin["ipam"].(map[string]any)
				if !reflect.DeepEqual(ipam, tc.ipams[i]) {
					t.Errorf("plugin %d ipam = %v, want %v", i, ipam, tc.ipams[i])
				}
				// Everything but a filled ipam is exactly as given.
				delete(plugin, "ipam")
				delete(inPlugin, "ipam")
				if !reflect.DeepEqual(plugin, inPlugin) {
					t.Errorf("plugin %d changed: %v, was %v", i, plugin, inPlugin)
				}
			}
			delete(got, "plugins")
			delete(in, "plugins")
			if !reflect.DeepEqual(got, in) {
				t.Errorf("list fields changed: %v, was %v", got, in)
			}
			// Deterministic: the same input gives the same bytes, so an
			// unchanged configuration is never rewritten.
			if again, _ := FillNetworkConfig([]byte(tc.in), kc, node); string(again) != string(out) {
				t.Errorf("output not deterministic:\n%s\n%s", out, again)
			}
		})
	}
}

// TestFillNetworkConfigKeepsNumbers: numbers pass through as written, not
// through float64 (a large value or a 1.0 stays what the author wrote).
func TestFillNetworkConfigKeepsNumbers(t *testing.T) {
	in := `{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","mtu":9000,"big":9007199254740993,"ratio":1.0,"ipam":{"type":"poolguard-ipam"}}]}`
	out, err := FillNetworkConfig([]byte(in), "/k", "n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"big": 9007199254740993`, `"ratio": 1.0`, `"mtu": 9000`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
