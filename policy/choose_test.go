package policy

import (
	"errors"
	"strings"
	"testing"

	"net/netip"

	"k8s.io/apimachinery/pkg/labels"
)

// TestChoosePools: the pools a node's plugin draws a pod's addresses from.
func TestChoosePools(t *testing.T) {
	sel := func(s string) labels.Selector { return mustSelector(t, s) }
	ps := []Pool{
		{Name: "default-v4", CIDR: netip.MustParsePrefix("198.18.0.0/16")},
		{Name: "default-v6", CIDR: netip.MustParsePrefix("2001:db8:1::/48")},
		{Name: "restricted-default", CIDR: netip.MustParsePrefix("198.19.0.0/24")},
		{Name: "trusted", CIDR: netip.MustParsePrefix("198.51.100.0/29")},
		{Name: "off", CIDR: netip.MustParsePrefix("203.0.113.0/28")},
		{Name: "edge-only", CIDR: netip.MustParsePrefix("203.0.113.64/26")},
	}
	ps[2].NamespaceSelector = sel("team=payments")
	ps[3].Manual = true
	ps[3].NamespaceSelector = sel(LabelNamespaceName + "=payments")
	ps[4].Disabled = true
	ps[4].Manual = true
	ps[5].Manual = true
	ps[5].NodeSelector = sel("edge=true")

	frozen := func(v4 Source, ann map[string]string) map[string]string {
		out := map[string]string{AnnotationProvenance: Provenance{IPv4: v4, IPv6: SourceDefault}.String()}
		for k, v := range ann {
			out[k] = v
		}
		return out
	}
	pinned := func(cidr string) map[string]string {
		return map[string]string{
			AnnotationIPv4Pools:  `["trusted"]`,
			AnnotationProvenance: Provenance{IPv4: SourcePod, IPv6: SourceDefault, Ranges: map[string]string{"trusted": cidr}}.String(),
		}
	}
	payments := map[string]string{"team": "payments"}
	type result = map[Family]string
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
		{name: "defaults", ns: "web", ann: frozen(SourceDefault, nil),
			want: result{IPv4: "default-v4", IPv6: "default-v6"}},
		{name: "restricted default joins for its namespace", ns: "payments", nsLbl: payments, ann: frozen(SourceDefault, nil),
			want: result{IPv4: "default-v4,restricted-default", IPv6: "default-v6"}},
		{name: "named manual pool", ns: "payments", ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["trusted"]`}),
			want: result{IPv4: "trusted", IPv6: "default-v6"}},
		{name: "named by CIDR, disabled skipped", ns: "payments", ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["off","198.51.100.0/29"]`}),
			want: result{IPv4: "trusted", IPv6: "default-v6"}},
		{name: "manual pool of another namespace", ns: "web", ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["trusted"]`}),
			wantErr: ErrForbiddenPool},
		{name: "only a disabled pool", ns: "web", ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["off"]`}),
			wantErr: ErrDisabledPool},
		{name: "unknown pool", ns: "web", ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["nope"]`}),
			wantErr: ErrUnknownPool},
		{name: "wrong family", ns: "web", ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["default-v6"]`}),
			wantErr: ErrWrongFamily},
		{name: "node not allowed", ns: "web", node: map[string]string{"edge": "false"}, ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["edge-only"]`}),
			wantErr: ErrNodeNotAllowed},
		{name: "node allowed", ns: "web", node: map[string]string{"edge": "true"}, ann: frozen(SourcePod, map[string]string{AnnotationIPv4Pools: `["edge-only"]`}),
			want: result{IPv4: "edge-only", IPv6: "default-v6"}},
		// Fail-safe: an unfrozen pod naming the trusted pool gets only the
		// unrestricted defaults, even in the namespace the pool allows.
		{name: "unfrozen ignores its annotation", ns: "payments", nsLbl: payments, ann: map[string]string{AnnotationIPv4Pools: `["trusted"]`},
			want: result{IPv4: "default-v4", IPv6: "default-v6"}},
		{name: "forged provenance is unfrozen", ns: "payments", ann: map[string]string{AnnotationProvenance: `{"ipv4pools":"admin"}`, AnnotationIPv4Pools: `["trusted"]`},
			want: result{IPv4: "default-v4", IPv6: "default-v6"}},
		{name: "unfrozen refused", ns: "web", fs: FailSafeRefuse, ann: nil, wantErr: ErrNotFrozen},
		// Pinned ranges: the pool the pod was admitted with, or nothing.
		{name: "pinned range still the pool's", ns: "payments", ann: pinned("198.51.100.0/29"),
			want: result{IPv4: "trusted", IPv6: "default-v6"}},
		{name: "pool re-created with another range", ns: "payments", ann: pinned("203.0.113.0/24"),
			wantErr: ErrPoolChanged},
		// A provenance that disagrees with the pod's lists was not written
		// by poolguard: the fail-safe applies.
		{name: "provenance says default beside a named pool", ns: "payments", nsLbl: payments,
			ann:  frozen(SourceDefault, map[string]string{AnnotationIPv4Pools: `["trusted"]`}),
			want: result{IPv4: "default-v4", IPv6: "default-v6"}},
		{name: "list copied from another namespace", ns: "web",
			ann:  map[string]string{AnnotationIPv4Pools: `["trusted"]`, AnnotationProvenance: Provenance{IPv4: SourceNamespace, IPv6: SourceDefault, Namespace: "payments"}.String()},
			want: result{IPv4: "default-v4", IPv6: "default-v6"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := tc.fs
			if fs == "" {
				fs = FailSafeDefaults
			}
			ws, err := ChoosePools(PodFacts{Namespace: tc.ns, Name: "p", Annotations: tc.ann, NamespaceLabels: tc.nsLbl, Node: "n1", NodeLabels: tc.node}, NewIndex(ps), fs)
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
			if len(got) != len(tc.want) || got[IPv4] != tc.want[IPv4] || got[IPv6] != tc.want[IPv6] {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOneDefaultRule: the defaults the allocator draws a pod's addresses
// from and the ones the Calico-mode freeze pins are the same rule
// (DefaultPools): for a pod whose node is known, the pools pinned at
// admission are exactly those it would be given at ADD.
func TestOneDefaultRule(t *testing.T) {
	sel := func(s string) labels.Selector { return mustSelector(t, s) }
	ps := []Pool{
		{Name: "everywhere", CIDR: netip.MustParsePrefix("198.18.0.0/24")},
		{Name: "racked", CIDR: netip.MustParsePrefix("198.18.1.0/24"), NodeSelector: sel("rack=r1")},
		{Name: "payments-only", CIDR: netip.MustParsePrefix("198.18.2.0/24"), NamespaceSelector: sel("team=payments")},
		{Name: "manual", CIDR: netip.MustParsePrefix("198.18.3.0/24"), Manual: true},
	}
	ix := NewIndex(ps)
	prov := map[string]string{AnnotationProvenance: Provenance{IPv4: SourceDefault, IPv6: SourceDefault}.String()}
	for _, tc := range []struct {
		nsLabels, nodeLabels map[string]string
		want                 string
	}{
		{nil, nil, "everywhere"},
		{nil, map[string]string{"rack": "r1"}, "everywhere, racked"},
		{map[string]string{"team": "payments"}, map[string]string{"rack": "r2"}, "everywhere, payments-only"},
		{map[string]string{"team": "payments"}, map[string]string{"rack": "r1"}, "everywhere, racked, payments-only"},
	} {
		ns := Namespace{Name: "ns", Labels: tc.nsLabels}
		cs, err := ChoosePools(PodFacts{Namespace: "ns", Name: "p", Annotations: prov, NamespaceLabels: tc.nsLabels, Node: "n", NodeLabels: tc.nodeLabels}, ix, FailSafeRefuse)
		if err != nil || len(cs) != 1 {
			t.Fatalf("ChoosePools(ns %v, node %v) = %+v, %v", tc.nsLabels, tc.nodeLabels, cs, err)
		}
		pinned := PinnableDefaults(IPv4, ns, ix, nonNil(tc.nodeLabels))
		if got := poolNames(cs[0].Pools); got != tc.want || strings.Join(pinned, ", ") != got {
			t.Errorf("ns %v, node %v: allocator gets %q, freeze pins %q, want both %q", tc.nsLabels, tc.nodeLabels, got, pinned, tc.want)
		}
	}
}
