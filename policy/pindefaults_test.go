package policy

import (
	"reflect"
	"testing"
)

// TestPinDefaults: under Calico's rules a family on the default pools is
// frozen to their explicit list, keeping only pools that serve any node or
// the node the pod is bound to; the result is idempotent, passes IsFrozen
// and reads back; a family whose defaults all need a node stays unpinned.
func TestPinDefaults(t *testing.T) {
	ix := testIndex(t)
	calico := Rules{PinDefaults: true}
	blue := Namespace{Name: "shop", Labels: map[string]string{"team": "blue"}}
	cases := []struct {
		name   string
		ns     Namespace
		pod    map[string]string
		node   map[string]string
		v4, v6 *string
	}{
		// racked has a nodeSelector: pinned only for a pod bound to its rack.
		{"unbound pod", blue, nil, nil, ptr(`["general","team"]`), ptr(`["v6"]`)},
		{"bound to the rack", blue, nil, map[string]string{"rack": "r1"}, ptr(`["general","team","racked"]`), ptr(`["v6"]`)},
		{"own list kept", blue, map[string]string{AnnotationIPv4Pools: `["general"]`}, nil, ptr(`["general"]`), ptr(`["v6"]`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := calico.Freeze(tc.pod, tc.ns, ix, tc.node)
			if !reflect.DeepEqual(f.IPv4, tc.v4) || !reflect.DeepEqual(f.IPv6, tc.v6) {
				t.Fatalf("frozen to v4 %v v6 %v, want %v %v", deref(f.IPv4), deref(f.IPv6), deref(tc.v4), deref(tc.v6))
			}
			out := f.Apply(copyMap(tc.pod))
			if again := calico.Freeze(out, tc.ns, ix, tc.node); !reflect.DeepEqual(again, f) {
				t.Fatalf("not idempotent: %+v then %+v", f, again)
			}
			if !calico.IsFrozen(out, tc.ns, ix, tc.node) {
				t.Fatalf("IsFrozen false for Freeze's own output %v", out)
			}
			if _, err := calico.ReadFrozen(tc.ns.Name, out); err != nil {
				t.Fatalf("ReadFrozen: %v", err)
			}
			// Native rules never write a default list, so they do not
			// accept one either.
			if tc.pod == nil && IsFrozen(out, tc.ns, ix) {
				t.Fatalf("native IsFrozen accepts pinned defaults")
			}
		})
	}
	t.Run("a pod claiming its own list as the defaults is reported as its own", func(t *testing.T) {
		forged := map[string]string{AnnotationIPv4Pools: `["trusted"]`, AnnotationProvenance: Provenance{IPv4: SourceDefault, IPv6: SourceDefault}.String()}
		if f := calico.Freeze(forged, blue, ix, nil); f.Provenance.IPv4 != SourcePod {
			t.Fatalf("forged default claim kept: %+v", f.Provenance)
		}
	})
	t.Run("defaults that all need a node stay unpinned", func(t *testing.T) {
		only := NewIndex([]Pool{{Name: "racked", CIDR: ix.byName["racked"].CIDR, NodeSelector: ix.byName["racked"].NodeSelector}})
		if f := calico.Freeze(nil, blue, only, nil); f.IPv4 != nil {
			t.Fatalf("pinned %v although Calico would ignore its nodeSelector", deref(f.IPv4))
		}
	})
}
