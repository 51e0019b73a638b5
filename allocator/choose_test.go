package allocator

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"poolguard.dev/poolguard/policy"
)

func TestChoose(t *testing.T) {
	sel := func(s string) labels.Selector {
		l, err := labels.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	pools := []Pool{
		pool(t, "default-v4", "198.18.0.0/16", 26),
		pool(t, "default-v6", "2001:db8:1::/48", 122),
		pool(t, "restricted-default", "198.19.0.0/24", 26),
		pool(t, "trusted", "198.51.100.0/29", 26),
		pool(t, "off", "203.0.113.0/28", 26),
		pool(t, "edge-only", "203.0.113.64/26", 26),
	}
	pools[2].NamespaceSelector = sel("team=payments")
	pools[3].Manual = true
	pools[3].NamespaceSelector = sel(policy.LabelNamespaceName + "=payments")
	pools[4].Disabled = true
	pools[4].Manual = true
	pools[5].Manual = true
	pools[5].NodeSelector = sel("edge=true")

	frozen := func(v4 policy.Source, ann map[string]string) map[string]string {
		out := map[string]string{policy.AnnotationProvenance: policy.Provenance{IPv4: v4, IPv6: policy.SourceDefault}.String()}
		for k, v := range ann {
			out[k] = v
		}
		return out
	}
	pinned := func(cidr string) map[string]string {
		return map[string]string{
			policy.AnnotationIPv4Pools:  `["trusted"]`,
			policy.AnnotationProvenance: policy.Provenance{IPv4: policy.SourcePod, IPv6: policy.SourceDefault, Ranges: map[string]string{"trusted": cidr}}.String(),
		}
	}
	payments := map[string]string{"team": "payments"}
	type result = map[policy.Family]string
	cases := []struct {
		name    string
		ns      string
		nsLbl   map[string]string
		node    map[string]string
		ann     map[string]string
		fs      FailSafe
		want    result
		wantErr error
	}{
		{name: "defaults", ns: "web", ann: frozen(policy.SourceDefault, nil),
			want: result{policy.IPv4: "default-v4", policy.IPv6: "default-v6"}},
		{name: "restricted default joins for its namespace", ns: "payments", nsLbl: payments, ann: frozen(policy.SourceDefault, nil),
			want: result{policy.IPv4: "default-v4,restricted-default", policy.IPv6: "default-v6"}},
		{name: "named manual pool", ns: "payments", ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}),
			want: result{policy.IPv4: "trusted", policy.IPv6: "default-v6"}},
		{name: "named by CIDR, disabled skipped", ns: "payments", ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["off","198.51.100.0/29"]`}),
			want: result{policy.IPv4: "trusted", policy.IPv6: "default-v6"}},
		{name: "manual pool of another namespace", ns: "web", ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}),
			wantErr: policy.ErrForbiddenPool},
		{name: "only a disabled pool", ns: "web", ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["off"]`}),
			wantErr: policy.ErrDisabledPool},
		{name: "unknown pool", ns: "web", ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["nope"]`}),
			wantErr: policy.ErrUnknownPool},
		{name: "wrong family", ns: "web", ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["default-v6"]`}),
			wantErr: policy.ErrWrongFamily},
		{name: "node not allowed", ns: "web", node: map[string]string{"edge": "false"}, ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["edge-only"]`}),
			wantErr: policy.ErrNodeNotAllowed},
		{name: "node allowed", ns: "web", node: map[string]string{"edge": "true"}, ann: frozen(policy.SourcePod, map[string]string{policy.AnnotationIPv4Pools: `["edge-only"]`}),
			want: result{policy.IPv4: "edge-only", policy.IPv6: "default-v6"}},
		// Fail-safe: an unfrozen pod naming the trusted pool gets only the
		// unrestricted defaults, even in the namespace the pool allows.
		{name: "unfrozen ignores its annotation", ns: "payments", nsLbl: payments, ann: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`},
			want: result{policy.IPv4: "default-v4", policy.IPv6: "default-v6"}},
		{name: "forged provenance is unfrozen", ns: "payments", ann: map[string]string{policy.AnnotationProvenance: `{"ipv4pools":"admin"}`, policy.AnnotationIPv4Pools: `["trusted"]`},
			want: result{policy.IPv4: "default-v4", policy.IPv6: "default-v6"}},
		{name: "unfrozen refused", ns: "web", fs: FailSafeRefuse, ann: nil, wantErr: ErrNotFrozen},
		// Pinned ranges: the pool the pod was admitted with, or nothing.
		{name: "pinned range still the pool's", ns: "payments", ann: pinned("198.51.100.0/29"),
			want: result{policy.IPv4: "trusted", policy.IPv6: "default-v6"}},
		{name: "pool re-created with another range", ns: "payments", ann: pinned("203.0.113.0/24"),
			wantErr: policy.ErrPoolChanged},
		// A provenance that disagrees with the pod's lists was not written
		// by poolguard: the fail-safe applies.
		{name: "provenance says default beside a named pool", ns: "payments", nsLbl: payments,
			ann:  frozen(policy.SourceDefault, map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}),
			want: result{policy.IPv4: "default-v4", policy.IPv6: "default-v6"}},
		{name: "list copied from another namespace", ns: "web",
			ann:  map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`, policy.AnnotationProvenance: policy.Provenance{IPv4: policy.SourceNamespace, IPv6: policy.SourceDefault, Namespace: "payments"}.String()},
			want: result{policy.IPv4: "default-v4", policy.IPv6: "default-v6"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := tc.fs
			if fs == "" {
				fs = FailSafeDefaults
			}
			ws, err := Choose(PodFacts{Pod: PodRef{Namespace: tc.ns, Name: "p"}, Annotations: tc.ann, NamespaceLabels: tc.nsLbl, Node: "n1", NodeLabels: tc.node}, pools, fs)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.ns+"/p") {
					t.Errorf("error does not name the pod: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := result{}
			for _, w := range ws {
				var n []string
				for _, p := range w.Pools {
					n = append(n, p.Name)
				}
				got[w.Family] = strings.Join(n, ",")
			}
			if len(got) != len(tc.want) || got[policy.IPv4] != tc.want[policy.IPv4] || got[policy.IPv6] != tc.want[policy.IPv6] {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
