package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

func testIndex(t *testing.T) *Index {
	return NewIndex([]Pool{
		{Name: "general", CIDR: netip.MustParsePrefix("198.18.0.0/16")},
		{Name: "trusted", CIDR: netip.MustParsePrefix("198.51.100.0/24"), Manual: true,
			NamespaceSelector: mustSelector(t, LabelNamespaceName+" in (payments)")},
		{Name: "team", CIDR: netip.MustParsePrefix("203.0.113.0/25"), NamespaceSelector: mustSelector(t, "team=blue")},
		{Name: "off", CIDR: netip.MustParsePrefix("203.0.113.128/25"), Disabled: true},
		{Name: "gone", CIDR: netip.MustParsePrefix("198.19.0.0/24"), Terminating: true},
		{Name: "tunnel", CIDR: netip.MustParsePrefix("198.19.1.0/24"), NotForWorkloads: true},
		{Name: "racked", CIDR: netip.MustParsePrefix("198.19.2.0/24"), NodeSelector: mustSelector(t, "rack=r1")},
		{Name: "v6", CIDR: netip.MustParsePrefix("2001:db8::/48")},
	})
}

func TestCheckList(t *testing.T) {
	ix := testIndex(t)
	payments := Subject{Namespace: Namespace{Name: "payments"}}
	shop := Subject{Namespace: Namespace{Name: "shop", Labels: map[string]string{"team": "blue"}}}
	forger := Subject{Namespace: Namespace{Name: "evil", Labels: map[string]string{LabelNamespaceName: "payments"}}}
	cases := []struct {
		name    string
		fam     Family
		value   string
		subject Subject
		want    []error // one per violation, in order
		warning bool
	}{
		{"allowed by name", IPv4, `["trusted"]`, payments, nil, false},
		{"allowed by CIDR", IPv4, `["198.51.100.0/24"]`, payments, nil, false},
		{"v6 CIDR in other notation", IPv6, `["2001:0db8::/48"]`, payments, nil, false},
		{"selector on labels", IPv4, `["team"]`, shop, nil, false},
		{"forbidden namespace", IPv4, `["trusted"]`, shop, []error{ErrForbiddenPool}, false},
		{"forged name label does not help", IPv4, `["trusted"]`, forger, []error{ErrForbiddenPool}, false},
		{"unknown", IPv4, `["nope"]`, payments, []error{ErrUnknownPool}, false},
		{"unknown CIDR", IPv4, `["198.51.100.0/25"]`, payments, []error{ErrUnknownPool}, false},
		{"wrong family v6 in v4", IPv4, `["v6"]`, payments, []error{ErrWrongFamily}, false},
		{"wrong family v4 in v6", IPv6, `["general"]`, payments, []error{ErrWrongFamily}, false},
		{"disabled pod", IPv4, `["off"]`, payments, []error{ErrDisabledPool}, false},
		{"terminating", IPv4, `["gone"]`, payments, []error{ErrDisabledPool}, false},
		{"disabled namespace warns", IPv4, `["off"]`, Subject{Namespace: Namespace{Name: "x"}, DisabledIsWarning: true}, []error{ErrDisabledPool}, true},
		{"not for workloads", IPv4, `["tunnel"]`, payments, []error{ErrForbiddenPool}, false},
		{"node unknown: not checked", IPv4, `["racked"]`, payments, nil, false},
		{"node allowed", IPv4, `["racked"]`, Subject{Namespace: Namespace{Name: "a"}, NodeLabels: map[string]string{"rack": "r1"}}, nil, false},
		{"node refused", IPv4, `["racked"]`, Subject{Namespace: Namespace{Name: "a"}, NodeLabels: map[string]string{"rack": "r2"}}, []error{ErrNodeNotAllowed}, false},
		{"same pool by name and CIDR", IPv4, `["general","198.18.0.0/16"]`, payments, []error{ErrMalformed}, false},
		{"every problem reported", IPv4, `["nope","v6","trusted"]`, shop, []error{ErrUnknownPool, ErrWrongFamily, ErrForbiddenPool}, false},
		{"malformed", IPv4, `general`, payments, []error{ErrMalformed}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckList(tc.fam, tc.value, tc.subject, ix)
			if len(got) != len(tc.want) {
				t.Fatalf("violations = %v, want %v", got, tc.want)
			}
			for i, v := range got {
				if !errors.Is(v, tc.want[i]) {
					t.Errorf("violation %d = %v, want %v", i, v, tc.want[i])
				}
				if v.Warning != tc.warning {
					t.Errorf("violation %d warning = %v, want %v", i, v.Warning, tc.warning)
				}
				if v.Key != tc.fam.AnnotationKey() || v.Value != tc.value || !strings.Contains(v.Error(), tc.value) {
					t.Errorf("violation %d does not name key and value: %v", i, v)
				}
			}
		})
	}
}

func TestCheckPodAndNamespace(t *testing.T) {
	ix := testIndex(t)
	ns := Namespace{Name: "shop", Annotations: map[string]string{AnnotationIPv4Pools: `["trusted"]`, AnnotationIPv6Pools: `["v6"]`}}
	frozen := Freeze(nil, ns, nil)
	vs := CheckPod(frozen, Subject{Namespace: ns}, ix)
	if len(vs) != 1 || !errors.Is(vs[0], ErrForbiddenPool) || vs[0].Source != SourceNamespace || vs[0].Namespace != "shop" {
		t.Fatalf("CheckPod = %+v", vs)
	}
	if !strings.Contains(vs[0].Error(), `copied from namespace "shop"`) {
		t.Fatalf("message does not say where the list came from: %v", vs[0])
	}
	deny, warn := Split(CheckNamespace(Namespace{Name: "x", Annotations: map[string]string{AnnotationIPv4Pools: `["off"]`}}, ix))
	if len(deny) != 0 || len(warn) != 1 {
		t.Fatalf("disabled pool in a namespace: deny %v warn %v", deny, warn)
	}
}

func TestDefaults(t *testing.T) {
	ix := testIndex(t)
	if got := poolNames(ix.Defaults(IPv4, map[string]string{LabelNamespaceName: "payments"})); got != "general, racked" {
		t.Errorf("defaults for payments = %s (Manual, disabled, terminating, non-workload and unselected pools must not be defaults)", got)
	}
	if got := poolNames(ix.Defaults(IPv4, map[string]string{"team": "blue"})); got != "general, team, racked" {
		t.Errorf("defaults for team blue = %s", got)
	}
	if got := poolNames(ix.Defaults(IPv6, nil)); got != "v6" {
		t.Errorf("v6 defaults = %s", got)
	}
}

func TestPoolSpecChecks(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.0/24":         "",
		"2001:db8::/48":           "",
		"198.51.100.7/24":         "did you mean 198.51.100.0/24",
		"not-a-cidr":              "is not a CIDR",
		"198.51.100.0":            "is not a CIDR",
		"::ffff:198.51.100.0/120": "IPv4-mapped",
	} {
		_, err := ParsePoolCIDR(in)
		if (want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidPool))) {
			t.Errorf("ParsePoolCIDR(%q) = %v, want %q", in, err, want)
		}
	}
	for _, tc := range []struct {
		f    Family
		size int
		ok   bool
	}{{IPv4, 26, true}, {IPv4, 20, true}, {IPv4, 32, true}, {IPv4, 19, false}, {IPv4, 33, false}, {IPv6, 122, true}, {IPv6, 115, false}, {IPv6, 129, false}} {
		if err := CheckBlockSize(tc.f, tc.size); (err == nil) != tc.ok {
			t.Errorf("CheckBlockSize(%v, %d) = %v", tc.f, tc.size, err)
		}
	}
	pools := testIndex(t).All()
	if p, ok := FindOverlap("new", netip.MustParsePrefix("198.18.5.0/24"), pools); !ok || p.Name != "general" {
		t.Errorf("overlap inside general not found: %v %v", p, ok)
	}
	if p, ok := FindOverlap("new", netip.MustParsePrefix("198.0.0.0/8"), pools); !ok {
		t.Errorf("overlap of a supernet not found: %v", p)
	}
	if _, ok := FindOverlap("general", netip.MustParsePrefix("198.18.0.0/16"), pools); ok {
		t.Error("a pool overlaps itself")
	}
	if _, ok := FindOverlap("new", netip.MustParsePrefix("2001:db9::/32"), pools); ok {
		t.Error("disjoint v6 range reported as overlapping")
	}
}

func TestReason(t *testing.T) {
	if Reason(nil) != "none" || Reason(errors.New("x")) != "internal" || Reason(Violation{Err: ErrUnknownPool}) != "unknown_pool" {
		t.Fatal("Reason mapping broken")
	}
}
