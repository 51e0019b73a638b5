package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func TestFreezePinsRanges(t *testing.T) {
	ix := testIndex(t)
	ns := Namespace{Name: "payments", Annotations: map[string]string{AnnotationIPv4Pools: `["trusted","198.18.0.0/16"]`}}
	pod := map[string]string{AnnotationIPv6Pools: `["v6","no-such-pool"]`}
	f := Freeze(pod, ns, ix)
	want := map[string]string{"trusted": "198.51.100.0/24", "198.18.0.0/16": "198.18.0.0/16", "v6": "2001:db8::/48"}
	if len(f.Provenance.Ranges) != len(want) {
		t.Fatalf("ranges = %v, want %v", f.Provenance.Ranges, want)
	}
	for k, v := range want {
		if f.Provenance.Ranges[k] != v {
			t.Fatalf("ranges = %v, want %v", f.Provenance.Ranges, want)
		}
	}
	applied := f.Apply(copyMap(pod))
	if !IsFrozen(applied, ns, ix) {
		t.Fatalf("IsFrozen false for Freeze's own output %v", applied)
	}
	// A forged pin is recomputed by Freeze and refused by IsFrozen.
	forged := f.Provenance
	forged.Ranges = map[string]string{"trusted": "203.0.113.0/24", "198.18.0.0/16": "198.18.0.0/16", "v6": "2001:db8::/48"}
	applied[AnnotationProvenance] = forged.String()
	if IsFrozen(applied, ns, ix) {
		t.Fatal("IsFrozen accepts a provenance pinning a pool to a range it does not have")
	}
	if again := Freeze(applied, ns, ix); again.Provenance.Ranges["trusted"] != "198.51.100.0/24" {
		t.Fatalf("Freeze kept a forged pin: %v", again.Provenance.Ranges)
	}
	// The pool re-created with another range: the admitted pod no longer
	// matches what admission would write now.
	moved := NewIndex(append([]Pool{{Name: "trusted", CIDR: netip.MustParsePrefix("203.0.113.0/24")}}, ix.All()...))
	if IsFrozen(f.Apply(copyMap(pod)), ns, moved) {
		t.Fatal("IsFrozen ignores a pool whose range changed")
	}
}

func TestCheckRange(t *testing.T) {
	prov := Provenance{IPv4: SourcePod, IPv6: SourceDefault, Ranges: map[string]string{"trusted": "198.51.100.0/24"}}
	same := Pool{Name: "trusted", CIDR: netip.MustParsePrefix("198.51.100.0/24")}
	moved := Pool{Name: "trusted", CIDR: netip.MustParsePrefix("203.0.113.0/24")}
	if err := prov.CheckRange("trusted", same); err != nil {
		t.Fatalf("same range refused: %v", err)
	}
	err := prov.CheckRange("trusted", moved)
	if !errors.Is(err, ErrPoolChanged) || !strings.Contains(err.Error(), "198.51.100.0/24") || !strings.Contains(err.Error(), "203.0.113.0/24") {
		t.Fatalf("moved pool: %v", err)
	}
	if err := (Provenance{}).CheckRange("trusted", moved); err != nil {
		t.Fatalf("a provenance without pins (frozen before pinning) refused: %v", err)
	}
	if err := prov.CheckRange("late-pool", moved); err != nil {
		t.Fatalf("an entry that named no pool at admission refused: %v", err)
	}
}

func TestReadFrozen(t *testing.T) {
	nsProv := Provenance{IPv4: SourceNamespace, IPv6: SourceDefault, Namespace: "payments"}.String()
	podProv := Provenance{IPv4: SourcePod, IPv6: SourcePod}.String()
	cases := []struct {
		name    string
		ns      string
		ann     map[string]string
		wantErr string
	}{
		{"namespace default", "payments", map[string]string{AnnotationIPv4Pools: `["trusted"]`, AnnotationProvenance: nsProv}, ""},
		{"both own", "x", map[string]string{AnnotationIPv4Pools: `["a"]`, AnnotationIPv6Pools: `["b"]`, AnnotationProvenance: podProv}, ""},
		{"no provenance", "x", map[string]string{AnnotationIPv4Pools: `["a"]`}, "no ipam.poolguard.dev/provenance"},
		{"garbage", "x", map[string]string{AnnotationProvenance: "{"}, "provenance"},
		{"list beside a default", "x", map[string]string{AnnotationIPv4Pools: `["a"]`, AnnotationProvenance: Provenance{IPv4: SourceDefault, IPv6: SourceDefault}.String()}, "default pools"},
		{"list missing", "x", map[string]string{AnnotationProvenance: podProv}, "no such annotation"},
		{"copied from another namespace", "shop", map[string]string{AnnotationIPv4Pools: `["trusted"]`, AnnotationProvenance: nsProv}, `not the pod's own "shop"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadFrozen(tc.ns, tc.ann)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ReadFrozen: %v", err)
				}
				for _, fam := range Families {
					v, ok := tc.ann[fam.AnnotationKey()]
					if got := f.Value(fam); ok != (got != nil) || (ok && *got != v) {
						t.Fatalf("%s read back as %v", fam, got)
					}
				}
				return
			}
			if !errors.Is(err, ErrNotFrozen) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ReadFrozen = %v, want ErrNotFrozen saying %q", err, tc.wantErr)
			}
		})
	}
}

func TestFailSafe(t *testing.T) {
	ix := testIndex(t)
	// Never trusted (Manual, namespaceSelector), team (namespaceSelector),
	// off, gone, tunnel; racked only on its rack.
	if got := poolNames(ix.FailSafe(IPv4, labels.Set{})); got != "general" {
		t.Fatalf("fail-safe v4 pools off the rack = %q", got)
	}
	if got := poolNames(ix.FailSafe(IPv4, labels.Set{"rack": "r1"})); got != "general, racked" {
		t.Fatalf("fail-safe v4 pools on the rack = %q", got)
	}
	if got := poolNames(ix.FailSafe(IPv6, nil)); got != "v6" {
		t.Fatalf("fail-safe v6 pools = %q", got)
	}
}

// TestFreezeOfFullListsReadsBack: two lists of the largest allowed size,
// every entry a pool, freeze into a provenance that parses again.
func TestFreezeOfFullListsReadsBack(t *testing.T) {
	var pools []Pool
	var v4, v6 []string
	for i := range MaxPoolsPerList {
		n4 := fmt.Sprintf("%s-%02d", strings.Repeat("a", 200), i)
		n6 := fmt.Sprintf("%s-%02d", strings.Repeat("b", 200), i)
		pools = append(pools,
			Pool{Name: n4, CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)},
			Pool{Name: n6, CIDR: netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/48", i))})
		v4, v6 = append(v4, n4), append(v6, n6)
	}
	pod := map[string]string{AnnotationIPv4Pools: FormatPoolList(v4), AnnotationIPv6Pools: FormatPoolList(v6)}
	for _, v := range pod {
		if _, err := ParsePoolList(v); err != nil {
			t.Fatalf("test lists are not valid: %v", err)
		}
	}
	out := Freeze(pod, Namespace{Name: "ns"}, NewIndex(pools)).Apply(copyMap(pod))
	if _, err := ReadFrozen("ns", out); err != nil {
		t.Fatalf("Freeze wrote a provenance of %d bytes that does not read back: %v", len(out[AnnotationProvenance]), err)
	}
}
