package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func ptr(s string) *string { return &s }

func TestFreeze(t *testing.T) {
	ns := Namespace{Name: "payments", ResourceVersion: "7", Annotations: map[string]string{AnnotationIPv4Pools: `["trusted"]`}}
	nsBoth := Namespace{Name: "dual", ResourceVersion: "9", Annotations: map[string]string{AnnotationIPv4Pools: `["a"]`, AnnotationIPv6Pools: `["b6"]`}}
	bare := Namespace{Name: "bare", ResourceVersion: "3"}
	fromNS := Provenance{IPv4: SourceNamespace, IPv6: SourceDefault, Namespace: "payments", NamespaceResourceVersion: "7"}
	cases := []struct {
		name string
		pod  map[string]string
		ns   Namespace
		want Frozen
	}{
		{"nothing anywhere", nil, bare, Frozen{Provenance: Provenance{IPv4: SourceDefault, IPv6: SourceDefault}}},
		{"namespace default", nil, ns, Frozen{IPv4: ptr(`["trusted"]`), Provenance: fromNS}},
		{"pod wins", map[string]string{AnnotationIPv4Pools: `["other"]`}, ns,
			Frozen{IPv4: ptr(`["other"]`), Provenance: Provenance{IPv4: SourcePod, IPv6: SourceDefault}}},
		{"per family: pod v6, namespace v4", map[string]string{AnnotationIPv6Pools: `["mine6"]`}, nsBoth,
			Frozen{IPv4: ptr(`["a"]`), IPv6: ptr(`["mine6"]`), Provenance: Provenance{IPv4: SourceNamespace, IPv6: SourcePod, Namespace: "dual", NamespaceResourceVersion: "9"}}},
		{"pod value equal to namespace's, no claim: pod", map[string]string{AnnotationIPv4Pools: `["trusted"]`}, ns,
			Frozen{IPv4: ptr(`["trusted"]`), Provenance: Provenance{IPv4: SourcePod, IPv6: SourceDefault}}},
		{"reinvocation keeps namespace provenance", map[string]string{AnnotationIPv4Pools: `["trusted"]`, AnnotationProvenance: fromNS.String()}, ns,
			Frozen{IPv4: ptr(`["trusted"]`), Provenance: fromNS}},
		{"forged claim with another value: pod", map[string]string{AnnotationIPv4Pools: `["firewall"]`, AnnotationProvenance: fromNS.String()}, ns,
			Frozen{IPv4: ptr(`["firewall"]`), Provenance: Provenance{IPv4: SourcePod, IPv6: SourceDefault}}},
		{"forged claim naming another namespace: pod",
			map[string]string{AnnotationIPv4Pools: `["trusted"]`, AnnotationProvenance: Provenance{IPv4: SourceNamespace, IPv6: SourceDefault, Namespace: "elsewhere"}.String()}, ns,
			Frozen{IPv4: ptr(`["trusted"]`), Provenance: Provenance{IPv4: SourcePod, IPv6: SourceDefault}}},
		{"garbage provenance ignored", map[string]string{AnnotationProvenance: "{{"}, bare,
			Frozen{Provenance: Provenance{IPv4: SourceDefault, IPv6: SourceDefault}}},
		{"malformed pod value kept for the validator", map[string]string{AnnotationIPv4Pools: `nope`}, ns,
			Frozen{IPv4: ptr(`nope`), Provenance: Provenance{IPv4: SourcePod, IPv6: SourceDefault}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Freeze(tc.pod, tc.ns, nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Freeze = %+v (v4 %v v6 %v), want %+v", got, deref(got.IPv4), deref(got.IPv6), tc.want)
			}
			// Idempotent: freezing the frozen result changes nothing, and
			// the validator's check agrees it is frozen.
			applied := got.Apply(copyMap(tc.pod))
			again := Freeze(applied, tc.ns, nil)
			if !reflect.DeepEqual(again, got) {
				t.Fatalf("Freeze not idempotent: %+v then %+v", got, again)
			}
			if !IsFrozen(applied, tc.ns, nil) {
				t.Fatalf("IsFrozen(%v) = false for Freeze's own output", applied)
			}
		})
	}
}

func TestIsFrozenRejectsTampering(t *testing.T) {
	ns := Namespace{Name: "payments", ResourceVersion: "7", Annotations: map[string]string{AnnotationIPv4Pools: `["trusted"]`}}
	frozen := Freeze(nil, ns, nil).Apply(nil)
	cases := map[string]func(m map[string]string){
		"provenance removed":  func(m map[string]string) { delete(m, AnnotationProvenance) },
		"list changed after":  func(m map[string]string) { m[AnnotationIPv4Pools] = `["other"]` },
		"v6 list added after": func(m map[string]string) { m[AnnotationIPv6Pools] = `["x"]` },
		"provenance garbage":  func(m map[string]string) { m[AnnotationProvenance] = "x" },
		"provenance says default": func(m map[string]string) {
			m[AnnotationProvenance] = Provenance{IPv4: SourceDefault, IPv6: SourceDefault}.String()
		},
		"v4 list removed, kept ns": func(m map[string]string) { delete(m, AnnotationIPv4Pools) },
	}
	for name, tamper := range cases {
		m := copyMap(frozen)
		tamper(m)
		if IsFrozen(m, ns, nil) {
			t.Errorf("%s: IsFrozen = true for %v", name, m)
		}
	}
	// Claiming "pod" for a list equal to the namespace's is consistent
	// (Freeze would say the same of a pod that named those pools itself);
	// the lists, which are what the allocator honours, are unchanged.
	m := copyMap(frozen)
	m[AnnotationProvenance] = Provenance{IPv4: SourcePod, IPv6: SourceDefault}.String()
	if !IsFrozen(m, ns, nil) {
		t.Error("IsFrozen rejects a consistent pod claim")
	}
	// A namespace edit between the mutating and validating calls changes
	// only the resourceVersion: still frozen.
	ns2 := ns
	ns2.ResourceVersion = "8"
	if !IsFrozen(frozen, ns2, nil) {
		t.Error("IsFrozen depends on the namespace's resourceVersion")
	}
	// A default moved between the two calls is refused, and said to be
	// that race; the same mismatch at the same resourceVersion is not.
	ns3 := ns2
	ns3.Annotations = map[string]string{AnnotationIPv4Pools: `["general"]`}
	if _, err := (Rules{}).CheckFrozen(frozen, ns3, nil, nil); !errors.Is(err, ErrNotFrozen) || !errors.Is(err, ErrNamespaceChanged) || !strings.Contains(err.Error(), "create the pod again") {
		t.Errorf("default moved during admission: %v, want ErrNotFrozen and ErrNamespaceChanged", err)
	}
	ns4 := ns3
	ns4.ResourceVersion = ns.ResourceVersion
	if _, err := (Rules{}).CheckFrozen(frozen, ns4, nil, nil); !errors.Is(err, ErrNotFrozen) || errors.Is(err, ErrNamespaceChanged) {
		t.Errorf("mismatch at the namespace's own resourceVersion: %v, want ErrNotFrozen only", err)
	}
}

func TestChangedGuardedKeys(t *testing.T) {
	base := map[string]string{AnnotationIPv4Pools: "a", AnnotationProvenance: "p", "other": "x"}
	cases := []struct {
		name string
		new  map[string]string
		want []string
	}{
		{"unchanged", map[string]string{AnnotationIPv4Pools: "a", AnnotationProvenance: "p", "other": "y"}, nil},
		{"changed", map[string]string{AnnotationIPv4Pools: "b", AnnotationProvenance: "p"}, []string{AnnotationIPv4Pools}},
		{"removed", map[string]string{AnnotationProvenance: "p"}, []string{AnnotationIPv4Pools}},
		{"added v6", map[string]string{AnnotationIPv4Pools: "a", AnnotationIPv6Pools: "", AnnotationProvenance: "p"}, []string{AnnotationIPv6Pools}},
		{"all gone", nil, []string{AnnotationIPv4Pools, AnnotationProvenance}},
	}
	for _, tc := range cases {
		if got := ChangedGuardedKeys(base, tc.new); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ChangedGuardedKeys = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
