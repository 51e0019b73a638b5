package policy

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// FuzzParsePoolList: any input either fails with ErrMalformed or yields a
// list that obeys every documented bound and survives a round trip.
func FuzzParsePoolList(f *testing.F) {
	for _, s := range []string{`["a"]`, `["a","b"]`, `[]`, `null`, `[1]`, `["198.51.100.0/24"]`, `["2001:db8::/48"]`, `["a","a"]`, `[""]`, `{"a":"b"}`, "[\"\\u0000\"]", `["a"`, ` ["x"] `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParsePoolList(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || got != nil {
				t.Fatalf("ParsePoolList(%q) = %v, %v: errors must wrap ErrMalformed and return no list", in, got, err)
			}
			return
		}
		if len(in) > MaxAnnotationBytes || len(got) == 0 || len(got) > MaxPoolsPerList {
			t.Fatalf("ParsePoolList(%q) accepted %d entries from %d bytes", in, len(got), len(in))
		}
		seen := map[string]bool{}
		for _, s := range got {
			if s == "" || seen[s] {
				t.Fatalf("ParsePoolList(%q) returned empty or duplicate entry %q", in, s)
			}
			seen[s] = true
		}
		again, err := ParsePoolList(FormatPoolList(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %v = %v, %v", got, again, err)
		}
	})
}

// FuzzParseProvenance: no panic; anything accepted round-trips exactly.
func FuzzParseProvenance(f *testing.F) {
	f.Add(`{"ipv4pools":"namespace","ipv6pools":"default","namespace":"ns","namespaceResourceVersion":"1"}`)
	f.Add(`{"ipv4pools":"pod","ipv6pools":"pod"}`)
	f.Add(`{"ipv4pools":"x"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParseProvenance(in)
		if err != nil {
			if !errors.Is(err, ErrNotFrozen) {
				t.Fatalf("error %v does not wrap ErrNotFrozen", err)
			}
			return
		}
		again, err := ParseProvenance(p.String())
		if err != nil || !again.Equal(p) {
			t.Fatalf("round trip of %+v = %+v, %v", p, again, err)
		}
	})
}

// FuzzFreeze: for any pod and namespace annotations, Freeze is idempotent,
// its output passes IsFrozen, and a list the pod did not carry can only come
// from the namespace.
func FuzzFreeze(f *testing.F) {
	f.Add(`["a"]`, "", `{"ipv4pools":"namespace","ipv6pools":"default","namespace":"ns"}`, `["a"]`, `["b"]`)
	f.Add("", `["x"]`, "", "", `["y"]`)
	f.Add(`["a"]`, "", `{`, `["b"]`, "")
	ix := NewIndex([]Pool{
		{Name: "a", CIDR: netip.MustParsePrefix("198.51.100.0/24")},
		{Name: "b", CIDR: netip.MustParsePrefix("2001:db8::/64")},
		{Name: "x", CIDR: netip.MustParsePrefix("203.0.113.0/24")},
	})
	f.Fuzz(func(t *testing.T, pod4, pod6, prov, ns4, ns6 string) {
		podAnn := map[string]string{}
		nsAnn := map[string]string{}
		set := func(m map[string]string, k, v string) {
			if v != "" {
				m[k] = v
			}
		}
		set(podAnn, AnnotationIPv4Pools, pod4)
		set(podAnn, AnnotationIPv6Pools, pod6)
		set(podAnn, AnnotationProvenance, prov)
		set(nsAnn, AnnotationIPv4Pools, ns4)
		set(nsAnn, AnnotationIPv6Pools, ns6)
		ns := Namespace{Name: "ns", ResourceVersion: "5", Annotations: nsAnn}
		frozen := Freeze(podAnn, ns, ix)
		out := frozen.Apply(copyMap(podAnn))
		if !IsFrozen(out, ns, ix) {
			t.Fatalf("IsFrozen false for Freeze output %v", out)
		}
		if _, err := ReadFrozen(ns.Name, out); err != nil {
			t.Fatalf("ReadFrozen refuses Freeze output %v: %v", out, err)
		}
		if again := Freeze(out, ns, ix); !reflect.DeepEqual(again, frozen) {
			t.Fatalf("not idempotent: %+v then %+v", frozen, again)
		}
		for _, fam := range Families {
			v := frozen.Value(fam)
			podV, onPod := podAnn[fam.AnnotationKey()]
			nsV, onNS := nsAnn[fam.AnnotationKey()]
			switch {
			case onPod && (v == nil || *v != podV):
				t.Fatalf("%s: pod's own list %q replaced by %v", fam, podV, v)
			case !onPod && onNS && (v == nil || *v != nsV || frozen.Provenance.For(fam) != SourceNamespace):
				t.Fatalf("%s: namespace default %q not frozen: %v %+v", fam, nsV, v, frozen.Provenance)
			case !onPod && !onNS && (v != nil || frozen.Provenance.For(fam) != SourceDefault):
				t.Fatalf("%s: list %v invented", fam, v)
			}
		}
	})
}
