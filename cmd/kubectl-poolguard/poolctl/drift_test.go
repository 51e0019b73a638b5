package poolctl

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"poolguard.dev/poolguard/policy"
)

// TestCheck: what drift reports about one pod, one case per kind of
// finding and the cases that must stay quiet.
func TestCheck(t *testing.T) {
	ix := testIndex()
	payments := ns("payments", v4("trusted"), nil)
	web := ns("web", nil, nil)
	// The pool trusted re-created with another range: pods pinned to
	// the old one must not follow it.
	moved := testPools()
	moved[1].CIDR = netip.MustParsePrefix("198.18.3.0/24")
	movedIx := policy.NewIndex(moved)
	disabled := testPools()
	disabled[0].Disabled = true

	for _, tc := range []struct {
		name string
		pod  Pod
		ns   policy.Namespace // the namespace now
		ix   *policy.Index    // the pools now (default ix)
		want []string         // "kind family|substring"
	}{
		{name: "frozen from the namespace, unchanged", pod: frozenPod("p", nil, payments, ix, "203.0.113.7"), ns: payments},
		{name: "named by the pod; the namespace moved: not drift", pod: frozenPod("p", v4("general"), web, ix, "198.51.100.7"), ns: ns("web", v4("off"), nil)},
		{name: "on the default pools, unchanged", pod: frozenPod("p", nil, web, ix, "198.51.100.7", "2001:db8::7"), ns: web},
		{
			name: "namespace default moved", pod: frozenPod("p", nil, payments, ix, "203.0.113.7"),
			ns:   ns("payments", v4("general"), nil),
			want: []string{`drift IPv4|frozen to ["trusted"] (namespace payments's default at resourceVersion 7), but a pod created now would get ["general"]`},
		},
		{
			name: "namespace gained a default", pod: frozenPod("p", nil, web, ix, "198.51.100.7"),
			ns:   ns("web", v4("general"), nil),
			want: []string{"drift IPv4|frozen to the default pools"},
		},
		{
			name: "namespace default removed", pod: frozenPod("p", nil, payments, ix, "203.0.113.7"),
			ns:   ns("payments", nil, nil),
			want: []string{"drift IPv4|would get the default pools"},
		},
		{
			name: "no provenance", pod: Pod{Namespace: "web", Name: "p", Annotations: v4("general"), IPs: addrs("198.51.100.7")}, ns: web,
			want: []string{"unfrozen |bypassed"},
		},
		{
			name: "forged provenance", ns: web,
			pod:  Pod{Namespace: "web", Name: "p", Annotations: map[string]string{policy.AnnotationProvenance: `{"ipv4pools":"pod"}`}},
			want: []string{"unfrozen |provenance"},
		},
		{
			name: "opted-out namespace, and a restricted address", ns: ns("legacy", nil, map[string]string{policy.LabelOptOut: "true"}),
			pod:  Pod{Namespace: "legacy", Name: "p", IPs: addrs("203.0.113.9")},
			want: []string{"unfrozen |opted out", `address IPv4|203.0.113.9 lies in pool "trusted" (203.0.113.0/25), outside the fail-safe IPv4 pools`},
		},
		{
			name: "address outside the frozen pools", pod: frozenPod("p", nil, payments, ix, "198.51.100.7"), ns: payments,
			want: []string{`address IPv4|lies in pool "general"`},
		},
		{
			name: "address in no pool", pod: frozenPod("p", nil, web, ix, "198.19.0.1"), ns: web,
			want: []string{"address IPv4|in no IPPool"},
		},
		{
			name: "IPv6 address outside the default pools", pod: frozenPod("p", nil, web, ix, "2001:db8:1::1"), ns: web,
			want: []string{"address IPv6|outside its default IPv6 pools"},
		},
		{
			name: "pinned pool re-created with another range", ns: payments, ix: movedIx,
			pod: frozenPod("p", nil, payments, ix, "203.0.113.7"),
			// The address still lies in the pinned range: no address finding.
			want: []string{`stale IPv4|pool "trusted" is now 198.18.3.0/24, but it was 203.0.113.0/25`},
		},
		{
			name: "frozen pool disabled since", ns: web, ix: policy.NewIndex(disabled),
			pod:  frozenPod("p", v4("general"), web, ix, "198.51.100.7"),
			want: []string{"stale IPv4|disabled"},
		},
		{name: "hostNetwork", pod: Pod{Namespace: "web", Name: "h", HostNetwork: true, IPs: addrs("198.19.0.1")}, ns: web},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := ix
			if tc.ix != nil {
				now = tc.ix
			}
			got := Check(tc.pod, tc.ns, now, policy.Rules{})
			lines := make([]string, len(got))
			for i, f := range got {
				lines[i] = fmt.Sprintf("%s %s %s", f.Kind, f.Family, f.Detail)
			}
			if len(got) != len(tc.want) {
				t.Errorf("%d findings, want %d:\n  %s", len(got), len(tc.want), strings.Join(lines, "\n  "))
			}
			wantLines(t, lines, tc.want...)
		})
	}
}

// TestDrift: pods are checked against their own namespace, skipped pods
// are counted, and findings come sorted.
func TestDrift(t *testing.T) {
	ix := testIndex()
	then := ns("payments", v4("trusted"), nil)
	namespaces := map[string]policy.Namespace{
		"payments": ns("payments", v4("general"), nil),
		"web":      ns("web", nil, nil),
	}
	pods := []Pod{
		frozenPod("b", nil, then, ix, "203.0.113.8"),
		frozenPod("a", nil, then, ix, "198.51.100.8"),
		frozenPod("ok", nil, namespaces["web"], ix, "198.51.100.9"),
		{Namespace: "web", Name: "host", HostNetwork: true},
		{Namespace: "web", Name: "done", Finished: true},
		{Namespace: "gone", Name: "orphan"},
	}
	r := Drift(pods, namespaces, ix, policy.Rules{})
	if r.Checked != 4 || r.HostNetwork != 1 || r.Finished != 1 {
		t.Errorf("checked %d, hostNetwork %d, finished %d; want 4, 1, 1", r.Checked, r.HostNetwork, r.Finished)
	}
	var got []string
	for _, f := range r.Findings {
		got = append(got, f.Namespace+"/"+f.Pod+" "+string(f.Kind))
	}
	want := []string{"gone/orphan unfrozen", "payments/a address", "payments/a drift", "payments/b drift"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("findings %q, want %q", got, want)
	}
	if r := Drift(pods[2:3], namespaces, ix, policy.Rules{}); r.Findings == nil || len(r.Findings) != 0 {
		t.Errorf("a clean pod: findings %#v, want an empty list (JSON [] for scripts)", r.Findings)
	}
}
