package kubestore_test

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestBlockFromAPIRefusesWhatItCannotTrust: a block object read back from
// the API server is checked before the allocator decides anything on it;
// each hand edit below is refused with ErrInvalidState and a message
// naming what is wrong, where it would otherwise steer an allocation out
// of the block (a cursor or slot past its end, a negative one), hand out a
// reserved address, or let a slot be taken twice.
func TestBlockFromAPIRefusesWhatItCannotTrust(t *testing.T) {
	pool := allocator.Range{Pool: "p", CIDR: netip.MustParsePrefix("198.51.100.0/24"), BlockSize: 28}
	good := func() *v1alpha1.IPAMBlock {
		b := allocator.NewBlock(pool, netip.MustParsePrefix("198.51.100.16/28"), "node-a")
		for _, c := range []string{"c-1", "c-2"} {
			if _, _, _, err := b.Allocate(c, "node-a", allocator.Cooldown{}); err != nil {
				t.Fatal(err)
			}
		}
		return kubestore.BlockToAPI(b)
	}
	if _, err := kubestore.BlockFromAPI(good()); err != nil {
		t.Fatalf("a block the allocator wrote: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(o *v1alpha1.IPAMBlock)
		want string
	}{
		{"cursor past the end", func(o *v1alpha1.IPAMBlock) { o.Spec.Cursor = 16 }, "cursor 16 outside its 16 addresses"},
		{"negative cursor", func(o *v1alpha1.IPAMBlock) { o.Spec.Cursor = -1 }, "negative"},
		{"slot past the end", func(o *v1alpha1.IPAMBlock) { o.Spec.Allocations[1].Slot = 40 }, "slot 40 outside"},
		{"negative slot", func(o *v1alpha1.IPAMBlock) { o.Spec.Allocations[1].Slot = -3 }, "slot -3 outside"},
		{"slot listed twice", func(o *v1alpha1.IPAMBlock) { o.Spec.Allocations[1].Slot = o.Spec.Allocations[0].Slot }, "listed twice"},
		{"sequence number never handed out", func(o *v1alpha1.IPAMBlock) { o.Spec.Allocations[0].Seq = 99 }, "sequence number 99"},
		{"slot without a claim", func(o *v1alpha1.IPAMBlock) { o.Spec.Allocations[0].Claim = "" }, "names no claim"},
		{"block larger than 4096 addresses", func(o *v1alpha1.IPAMBlock) {
			o.Name, o.Spec.CIDR, o.Spec.PoolCIDR = "198-51-96-0-19", "198.51.96.0/19", "198.51.96.0/19"
		}, "larger than 4096"},
		{"block outside its pool", func(o *v1alpha1.IPAMBlock) { o.Spec.PoolCIDR = "203.0.113.0/24" }, "not inside its pool"},
		{"host bits in the cidr", func(o *v1alpha1.IPAMBlock) { o.Spec.CIDR = "198.51.100.17/28" }, "named"},
		{"name of another block", func(o *v1alpha1.IPAMBlock) { o.Name = "198-51-100-32-28" }, "whose block is named 198-51-100-16-28"},
		{"reserved address in a slot", func(o *v1alpha1.IPAMBlock) {
			o.Name, o.Spec.CIDR, o.Spec.Allocations[0].Slot = "198-51-100-0-28", "198.51.100.0/28", 0
		}, "reserved address 198.51.100.0"},
		{"release record keyed by no slot number", func(o *v1alpha1.IPAMBlock) {
			o.Spec.Released = map[string]v1alpha1.BlockRelease{"five": {Node: "node-a", At: metav1.Now()}}
		}, `released slot "five" is not a slot number`},
		{"release record keyed by a slot number not in decimal", func(o *v1alpha1.IPAMBlock) {
			o.Spec.Released = map[string]v1alpha1.BlockRelease{"05": {Node: "node-a", At: metav1.Now()}}
		}, `released slot "05"`},
		{"release record past the end", func(o *v1alpha1.IPAMBlock) {
			o.Spec.Released = map[string]v1alpha1.BlockRelease{"16": {Node: "node-a", At: metav1.Now()}}
		}, "release record of slot 16 outside"},
		{"release record without a time", func(o *v1alpha1.IPAMBlock) {
			o.Spec.Released = map[string]v1alpha1.BlockRelease{"5": {Node: "node-a"}}
		}, "release record of slot 5 has no time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.edit(o)
			_, err := kubestore.BlockFromAPI(o)
			if !errors.Is(err, allocator.ErrInvalidState) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want ErrInvalidState saying %q", err, tc.want)
			}
		})
	}
}

// TestInvalidPoolIsReportedAsInvalid: an IPPool whose selector does not
// parse (written past the webhook) stays in the plugin's view of the pools,
// marked invalid: a pod naming it is refused with ErrInvalidPool and the
// reason, not as if the pool did not exist.
func TestInvalidPoolIsReportedAsInvalid(t *testing.T) {
	items := []apiv1alpha1.IPPool{{
		ObjectMeta: metav1.ObjectMeta{Name: "broken"},
		Spec: apiv1alpha1.IPPoolSpec{CIDR: "198.51.100.0/24", NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near", Values: []string{"x"}}},
		}},
	}}
	got := kubestore.FromIPPools(items)
	if p, ok := got.Index.Lookup("broken"); !ok || p.Invalid == nil {
		t.Fatalf("FromIPPools = %+v, want the pool, marked invalid", got.Index.All())
	}
	if _, ok := got.Ranges["broken"]; ok {
		t.Errorf("an invalid pool has a range to allocate from: %+v", got.Ranges)
	}
	pod := policy.PodFacts{
		Namespace: "payments", Name: "api",
		Annotations: map[string]string{
			policy.AnnotationIPv4Pools:  `["broken"]`,
			policy.AnnotationProvenance: policy.Provenance{IPv4: policy.SourcePod, IPv6: policy.SourceDefault}.String(),
		},
	}
	_, err := policy.ChoosePools(pod, got.Index, policy.FailSafeRefuse)
	if !errors.Is(err, policy.ErrInvalidPool) || errors.Is(err, policy.ErrUnknownPool) || !strings.Contains(err.Error(), "namespaceSelector") {
		t.Errorf("ChoosePools = %v; want the pool reported invalid, with its selector's error", err)
	}
}

// TestBlockReleasesRoundTrip: a block's release records survive the trip
// to its object and back, each keyed by its slot and stored to the second,
// rounded up so that a cooldown never ends early.
func TestBlockReleasesRoundTrip(t *testing.T) {
	pool := allocator.Range{Pool: "p", CIDR: netip.MustParsePrefix("198.51.100.0/24"), BlockSize: 28}
	b := allocator.NewBlock(pool, netip.MustParsePrefix("198.51.100.16/28"), "node-a")
	var held []netip.Addr
	for _, c := range []string{"c-1", "c-2", "c-3"} {
		addr, _, _, err := b.Allocate(c, "node-"+c, allocator.Cooldown{})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, addr)
	}
	at := time.Date(2026, 11, 29, 14, 27, 5, 0, time.UTC)
	for i, c := range []string{"c-1", "c-3"} {
		off, _ := b.Offset(held[2*i])
		if !b.Release(held[2*i], c, b.Slots[off].Seq, at.Add(time.Duration(i)*(time.Minute+time.Millisecond))) {
			t.Fatal("release failed")
		}
	}
	o := kubestore.BlockToAPI(b)
	want := map[string]v1alpha1.BlockRelease{
		"0": {Node: "node-c-1", At: metav1.NewTime(at)},
		"2": {Node: "node-c-3", At: metav1.NewTime(at.Add(time.Minute + time.Second))}, // rounded up
	}
	if !reflect.DeepEqual(o.Spec.Released, want) {
		t.Fatalf("released = %v, want %v", o.Spec.Released, want)
	}
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var back v1alpha1.IPAMBlock
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	got, err := kubestore.BlockFromAPI(&back)
	if err != nil {
		t.Fatal(err)
	}
	wantRel := map[int]allocator.Cooling{
		0: {Node: "node-c-1", At: at},
		2: {Node: "node-c-3", At: at.Add(time.Minute + time.Second)},
	}
	if len(got.Released) != len(wantRel) {
		t.Fatalf("read back %v, want %v", got.Released, wantRel)
	}
	for off, w := range wantRel {
		if r := got.Released[off]; r.Node != w.Node || !r.At.Equal(w.At) {
			t.Fatalf("slot %d read back %+v, want %+v", off, r, w)
		}
	}
	// A block without releases has no field at all.
	if raw, _ := json.Marshal(kubestore.BlockToAPI(allocator.NewBlock(pool, netip.MustParsePrefix("198.51.100.32/28"), ""))); strings.Contains(string(raw), "released") {
		t.Fatalf("an empty block's object: %s", raw)
	}
}
