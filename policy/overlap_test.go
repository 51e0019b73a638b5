package policy

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// TestIndexMarksOverlaps: pools sharing addresses serve no pod, whatever
// order they come in; disjoint pools, and pools of the other family, stay
// usable; a pool already invalid keeps its own reason.
func TestIndexMarksOverlaps(t *testing.T) {
	pool := func(name, cidr string) Pool { return Pool{Name: name, CIDR: netip.MustParsePrefix(cidr)} }
	broken := Pool{Name: "broken", CIDR: netip.MustParsePrefix("203.0.113.64/26"), Invalid: errors.New("selector does not parse")}
	pools := []Pool{
		pool("wide", "198.51.100.0/24"),
		pool("inner", "198.51.100.128/25"),
		pool("innermost", "198.51.100.192/26"),
		pool("after", "198.51.101.0/24"),
		pool("twin-a", "198.18.0.0/24"),
		pool("twin-b", "198.18.0.0/24"),
		pool("v6", "2001:db8::/64"),
		pool("v6-inside", "2001:db8::/80"),
		pool("v6-alone", "2001:db8:1::/64"),
		pool("free", "203.0.113.0/26"),
		broken,
		pool("covers-broken", "203.0.113.0/24"),
		{Name: "no-cidr"},
	}
	want := []string{"covers-broken", "free", "inner", "innermost", "twin-a", "twin-b", "v6", "v6-inside", "wide"}
	for _, order := range [][]Pool{pools, reversed(pools)} {
		ix := NewIndex(order)
		var got []string
		for _, p := range ix.All() {
			if p.Invalid != nil && errors.Is(p.Invalid, ErrOverlap) {
				got = append(got, p.Name)
				if p.Usable() {
					t.Errorf("%s overlaps yet is usable", p.Name)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("overlapping: %v, want %v", got, want)
		}
		if p, _ := ix.Lookup("broken"); errors.Is(p.Invalid, ErrOverlap) {
			t.Errorf("broken lost its own reason: %v", p.Invalid)
		}
		for _, name := range []string{"after", "v6-alone"} {
			if p, _ := ix.Lookup(name); !p.Usable() {
				t.Errorf("%s is disjoint yet not usable: %v", name, p.Invalid)
			}
		}
	}
	if pools[0].Invalid != nil {
		t.Errorf("NewIndex changed its caller's pools")
	}
}

func reversed(p []Pool) []Pool {
	out := slices.Clone(p)
	slices.Reverse(out)
	return out
}
