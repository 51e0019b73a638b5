package controller

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// snapshot indexes what one sweep listed, for its decisions: which pods
// exist, which slots the claims record, which nodes exist.
//
// Pods and recorded slots are kept as 64-bit hashes under a seed of the
// snapshot's own, in flat sets without pointers (hashSet): at 150,000
// pods the two take 6 MB, in two allocations, probed about one cache line
// at a time, and cost the garbage collector nothing to scan. A hash
// collision can only make something look present that is not: the sweep
// then keeps a claim or a slot it would have freed, until a later sweep,
// under another seed, sees it as it is (and its grace period starts
// over). It never makes the sweep free what exists.
type snapshot struct {
	seed maphash.Seed
	// pods holds podHash(namespace, name, uid) of every pod for its own
	// UID, for the static UID a mirror pod names, and for "" (a claim
	// naming no UID matches any pod of that name): see policy.IsThePod.
	pods hashSet
	// recorded holds slotHash(claim, address, seq) of every address a
	// claim records, released claims' too.
	recorded hashSet
	nodes    map[string]struct{}
}

// newSnapshot indexes the listed pods and nodes, ready to record the
// slots of claims (record). It reads them only: they are the cache's own
// objects.
func newSnapshot(pods, nodes []*metav1.PartialObjectMetadata, claims int) *snapshot {
	s := &snapshot{
		seed:     maphash.MakeSeed(),
		pods:     newHashSet(2 * len(pods)),
		recorded: newHashSet(claims),
		nodes:    make(map[string]struct{}, len(nodes)),
	}
	for _, p := range pods {
		s.pods.add(s.podHash(p.Namespace, p.Name, string(p.UID)))
		s.pods.add(s.podHash(p.Namespace, p.Name, ""))
		if uid, ok := p.Annotations[policy.AnnotationMirrorPod]; ok {
			s.pods.add(s.podHash(p.Namespace, p.Name, uid))
		}
	}
	for _, n := range nodes {
		s.nodes[n.Name] = struct{}{}
	}
	return s
}

// record adds the slots a claim records: in the same pass over the claims
// as the decisions about them, so that each claim is read once.
func (s *snapshot) record(o *v1alpha1.IPAMClaim) {
	for _, a := range o.Spec.Addresses {
		if addr, err := netip.ParseAddr(a.Address); err == nil {
			s.recorded.add(s.slotHash(o.Name, addr, a.Seq))
		}
	}
}

// podAlive reports whether the pod a claim serves exists, as
// policy.IsThePod matches it (a static pod by its mirror pod).
func (s *snapshot) podAlive(ref v1alpha1.PodReference) bool {
	return s.pods.has(s.podHash(ref.Namespace, ref.Name, ref.UID))
}

// isRecorded reports whether claim records addr with sequence number seq.
func (s *snapshot) isRecorded(claim string, addr netip.Addr, seq int64) bool {
	return s.recorded.has(s.slotHash(claim, addr, seq))
}

// nodeExists reports whether the node was listed.
func (s *snapshot) nodeExists(name string) bool {
	_, ok := s.nodes[name]
	return ok
}

func (s *snapshot) podHash(namespace, name, uid string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	_, _ = h.WriteString(namespace)
	_ = h.WriteByte(0) // no name holds a NUL
	_, _ = h.WriteString(name)
	_ = h.WriteByte(0)
	_, _ = h.WriteString(uid)
	return h.Sum64()
}

func (s *snapshot) slotHash(claim string, addr netip.Addr, seq int64) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	_, _ = h.WriteString(claim)
	var b [1 + 16 + 8]byte
	b[0] = byte(addr.BitLen()) // 1.2.3.4 is not ::ffff:1.2.3.4
	a := addr.As16()
	copy(b[1:], a[:])
	binary.LittleEndian.PutUint64(b[17:], uint64(seq))
	_, _ = h.Write(b[:])
	_, _ = h.WriteString(addr.Zone())
	return h.Sum64()
}

// servesPod reports whether a pod object is the pod a claim names.
func servesPod(p *metav1.PartialObjectMetadata, ref v1alpha1.PodReference) bool {
	return policy.IsThePod(string(p.UID), p.Annotations, ref.UID)
}

// records reports whether a claim object records addr with sequence
// number seq: the live re-check of one claim, exact.
func records(o *v1alpha1.IPAMClaim, addr netip.Addr, seq int64) bool {
	for _, a := range o.Spec.Addresses {
		if a.Seq == seq {
			if got, err := netip.ParseAddr(a.Address); err == nil && got == addr {
				return true
			}
		}
	}
	return false
}

// slotAddr returns the address at a slot of a block.
func slotAddr(block netip.Prefix, slot int32) netip.Addr {
	b := allocator.Block{CIDR: block}
	return b.Addr(int(slot))
}

// hashSet is a set of 64-bit hashes in one flat table (open addressing,
// linear probing, kept at most 3/4 full): about one cache line per
// lookup, and no pointers. Hash 0 is stored as 1 (a collision, harmless:
// see snapshot).
type hashSet struct {
	slots []uint64
	n     int
}

// newHashSet returns a set sized for n hashes; it grows past them.
func newHashSet(n int) hashSet {
	size := 8
	for size*3 < n*4 {
		size *= 2
	}
	return hashSet{slots: make([]uint64, size)}
}

func (s *hashSet) add(h uint64) {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	h = max(h, 1)
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return
		case 0:
			s.slots[i] = h
			s.n++
			return
		}
	}
}

func (s *hashSet) has(h uint64) bool {
	h = max(h, 1)
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

// grow doubles the table: a dual-stack cluster records two addresses a
// claim, a mirror pod is known by two UIDs.
func (s *hashSet) grow() {
	old := s.slots
	*s = hashSet{slots: make([]uint64, 2*len(old))}
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
}
