package policy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCheckIPPool(t *testing.T) {
	others := []Pool{
		{Name: "general", CIDR: netip.MustParsePrefix("198.18.0.0/16")},
		{Name: "trusted", CIDR: netip.MustParsePrefix("198.51.100.0/24")},
		{Name: "v6", CIDR: netip.MustParsePrefix("2001:db8::/48")},
	}
	spec := func(name, cidr string, block int) PoolSpec { return PoolSpec{Name: name, CIDR: cidr, BlockSize: block} }
	badSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}
	type want struct {
		field, sentinel, text string
	}
	cases := []struct {
		name  string
		p     PoolSpec
		old   *PoolSpec
		inUse bool
		want  []want // one per violation, in order
	}{
		{"v4 ok", spec("new", "203.0.113.0/24", 26), nil, false, nil},
		{"v6 ok", spec("new", "2001:db8:1::/48", 122), nil, false, nil},
		{"block larger than the pool", spec("new", "203.0.113.0/28", 20), nil, false, nil},
		{"v4 block bounds", spec("new", "203.0.113.0/24", 32), nil, false, nil},
		{"v6 block bounds", spec("new", "2001:db8:1::/48", 116), nil, false, nil},
		{"not a CIDR", spec("new", "203.0.113.0", 26), nil, false, []want{{FieldCIDR, "invalid", "is not a CIDR"}}},
		{"host bits", spec("new", "203.0.113.65/26", 26), nil, false, []want{{FieldCIDR, "invalid", "did you mean 203.0.113.64/26?"}}},
		{"v4-mapped v6", spec("new", "::ffff:203.0.113.0/120", 122), nil, false, []want{{FieldCIDR, "invalid", "write the IPv4 range"}}},
		{"zone", spec("new", "fe80::%eth0/64", 122), nil, false, []want{{FieldCIDR, "invalid", ""}}},
		{"v4 block 33", spec("new", "203.0.113.0/24", 33), nil, false, []want{{FieldBlockSize, "invalid", "out of range for IPv4 pools (20 to 32)"}}},
		{"v4 block 19", spec("new", "203.0.113.0/24", 19), nil, false, []want{{FieldBlockSize, "invalid", "out of range"}}},
		{"v6 block 115", spec("new", "2001:db8:1::/48", 115), nil, false, []want{{FieldBlockSize, "invalid", "out of range for IPv6 pools (116 to 128)"}}},
		{"v6 block 26", spec("new", "2001:db8:1::/48", 26), nil, false, []want{{FieldBlockSize, "invalid", "out of range"}}},
		{"bad namespace selector", PoolSpec{Name: "new", CIDR: "203.0.113.0/24", BlockSize: 26, NamespaceSelector: badSel}, nil, false,
			[]want{{FieldNamespaceSelector, "invalid", "namespaceSelector"}}},
		{"bad node selector with bad CIDR", PoolSpec{Name: "new", CIDR: "203.0.113.1/24", BlockSize: 26, NodeSelector: badSel}, nil, false,
			[]want{{FieldCIDR, "invalid", "host bits"}, {FieldNodeSelector, "invalid", "nodeSelector"}}},
		{"overlap", spec("new", "198.51.100.128/25", 26), nil, false, []want{{FieldCIDR, "overlap", `overlaps IPPool "trusted" (198.51.100.0/24)`}}},
		{"overlap enclosing", spec("new", "198.0.0.0/8", 26), nil, false, []want{{FieldCIDR, "overlap", "overlaps IPPool"}}},
		{"v6 overlap", spec("new", "2001:db8:0:1::/64", 122), nil, false, []want{{FieldCIDR, "overlap", `"v6"`}}},
		{"a pool does not overlap itself", spec("trusted", "198.51.100.0/25", 26), &PoolSpec{Name: "trusted", CIDR: "198.51.100.0/24", BlockSize: 26}, false, nil},
		{"unchanged CIDR is not checked for overlap", spec("shadow", "198.18.0.0/24", 26), &PoolSpec{Name: "shadow", CIDR: "198.18.0.0/24", BlockSize: 26}, false, nil},
		{"overlap not checked on an invalid pool", spec("new", "198.51.100.0/24", 40), nil, false, []want{{FieldBlockSize, "invalid", ""}}},
		{"in use: CIDR frozen", spec("p", "203.0.113.0/25", 26), &PoolSpec{Name: "p", CIDR: "203.0.113.0/24", BlockSize: 26}, true,
			[]want{{FieldCIDR, "in use", "has allocated addresses"}}},
		{"in use: block size frozen", spec("p", "203.0.113.0/24", 28), &PoolSpec{Name: "p", CIDR: "203.0.113.0/24", BlockSize: 26}, true,
			[]want{{FieldBlockSize, "in use", "create a new pool instead"}}},
		{"in use: the default block size written out is no change", spec("p", "203.0.113.0/24", 26), &PoolSpec{Name: "p", CIDR: "203.0.113.0/24"}, true, nil},
		{"in use: from the default to another block size", spec("p", "203.0.113.0/24", 28), &PoolSpec{Name: "p", CIDR: "203.0.113.0/24"}, true,
			[]want{{FieldBlockSize, "in use", "create a new pool instead"}}},
		{"in use: respelled CIDR is no change", spec("p", "2001:db8:1::/48", 122), &PoolSpec{Name: "p", CIDR: "2001:DB8:1:0::/48", BlockSize: 122}, true, nil},
		{"in use: disabling is fine", PoolSpec{Name: "p", CIDR: "203.0.113.0/24", BlockSize: 26, Disabled: true}, &PoolSpec{Name: "p", CIDR: "203.0.113.0/24", BlockSize: 26}, true, nil},
		{"in use: bad new CIDR", spec("p", "nonsense", 26), &PoolSpec{Name: "p", CIDR: "203.0.113.0/24", BlockSize: 26}, true,
			[]want{{FieldCIDR, "invalid", "not a CIDR"}, {FieldCIDR, "in use", ""}}},
		{"not in use: CIDR may change", spec("p", "203.0.113.0/25", 27), &PoolSpec{Name: "p", CIDR: "203.0.113.0/24", BlockSize: 26}, false, nil},
	}
	sentinels := map[string]error{"invalid": ErrInvalidPool, "overlap": ErrOverlap, "in use": ErrPoolInUse}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckIPPool(tc.p, tc.old, tc.inUse, others)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tc.want))
			}
			for i, w := range tc.want {
				var pe *PoolError
				if !errors.As(errs[i], &pe) {
					t.Fatalf("error %d is %T, not a *PoolError: %v", i, errs[i], errs[i])
				}
				if pe.Field != w.field {
					t.Errorf("error %d is about %q, want %q: %v", i, pe.Field, w.field, pe)
				}
				if !errors.Is(errs[i], sentinels[w.sentinel]) {
					t.Errorf("error %d does not wrap %v: %v", i, sentinels[w.sentinel], errs[i])
				}
				if !strings.Contains(errs[i].Error(), w.text) {
					t.Errorf("error %d = %q, want it to say %q", i, errs[i], w.text)
				}
			}
		})
	}
}

func TestIPPoolWarnings(t *testing.T) {
	on := PoolSpec{Name: "p", CIDR: "203.0.113.0/24", BlockSize: 26}
	off := on
	off.Disabled = true
	if w := IPPoolWarnings(off, &on, true, 7); len(w) != 1 || !strings.Contains(w[0], "7 allocated addresses stay") {
		t.Errorf("disabling a pool in use: warnings %q", w)
	}
	for name, w := range map[string][]string{
		"not in use":    IPPoolWarnings(off, &on, false, 0),
		"created off":   IPPoolWarnings(off, nil, true, 0),
		"already off":   IPPoolWarnings(off, &off, true, 7),
		"enabled again": IPPoolWarnings(on, &off, true, 7),
	} {
		if len(w) != 0 {
			t.Errorf("%s: unexpected warnings %q", name, w)
		}
	}
}
