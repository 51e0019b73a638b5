package controller

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestSnapshotPodAlive: the snapshot's answer is policy.IsThePod's for
// every claim against the pods of its name (none, one, a mirror pod), for
// a claim naming the pod's UID, another UID, the static UID a mirror pod
// names, or no UID.
func TestSnapshotPodAlive(t *testing.T) {
	pod := func(ns, name, uid string, ann map[string]string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Annotations: ann}}
	}
	pods := []*metav1.PartialObjectMetadata{
		pod("web", "a", "uid-a", nil),
		pod("web", "b", "uid-b", map[string]string{"other": "uid-x"}),
		pod("kube-system", "etcd-node-1", "uid-mirror", map[string]string{policy.AnnotationMirrorPod: "uid-static"}),
		pod("db", "a", "uid-db-a", nil), // same name, another namespace
	}
	s := newSnapshot(pods, nil, 0)
	for _, ns := range []string{"web", "db", "kube-system", "gone"} {
		for _, name := range []string{"a", "b", "etcd-node-1", "c", "a/b", "web"} {
			for _, uid := range []string{"", "uid-a", "uid-b", "uid-x", "uid-mirror", "uid-static", "uid-db-a", "web"} {
				ref := v1alpha1.PodReference{Namespace: ns, Name: name, UID: uid}
				want := false
				for _, p := range pods {
					if p.Namespace == ns && p.Name == name && policy.IsThePod(string(p.UID), p.Annotations, uid) {
						want = true
					}
				}
				if got := s.podAlive(ref); got != want {
					t.Errorf("podAlive(%+v) = %v, want %v", ref, got, want)
				}
			}
		}
	}
}

// TestSnapshotRecorded: a slot is recorded only by the claim that records
// it, with its address and its sequence number.
func TestSnapshotRecorded(t *testing.T) {
	claim := func(name string, addrs ...string) *v1alpha1.IPAMClaim {
		o := &v1alpha1.IPAMClaim{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for i, a := range addrs {
			o.Spec.Addresses = append(o.Spec.Addresses, v1alpha1.ClaimAddress{Address: a, Seq: int64(i + 7)})
		}
		return o
	}
	s := newSnapshot(nil, nil, 2)
	for _, c := range []*v1alpha1.IPAMClaim{claim("c-1", "198.18.0.5", "2001:db8::5"), claim("c-2", "198.18.0.6"), claim("c-bad", "not-an-address")} {
		s.record(c)
	}
	v4, v6 := netip.MustParseAddr("198.18.0.5"), netip.MustParseAddr("2001:db8::5")
	for _, tc := range []struct {
		claim string
		addr  netip.Addr
		seq   int64
		want  bool
	}{
		{"c-1", v4, 7, true},
		{"c-1", v6, 8, true},
		{"c-1", v4, 8, false}, // another sequence number: reassigned
		{"c-1", v6, 7, false}, // the sequence number of another address
		{"c-2", v4, 7, false}, // another claim
		{"c-1", netip.MustParseAddr("198.18.0.6"), 7, false},        // another address
		{"c-1", netip.MustParseAddr("::ffff:198.18.0.5"), 7, false}, // the same bytes in IPv6
		{"c-2", netip.MustParseAddr("198.18.0.6"), 7, true},
		{"c-3", v4, 7, false},
	} {
		if got := s.isRecorded(tc.claim, tc.addr, tc.seq); got != tc.want {
			t.Errorf("isRecorded(%s, %s, %d) = %v, want %v", tc.claim, tc.addr, tc.seq, got, tc.want)
		}
		if c := claim("c-1", "198.18.0.5", "2001:db8::5"); tc.claim == "c-1" && records(c, tc.addr, tc.seq) != tc.want {
			t.Errorf("records(c-1, %s, %d) = %v, want %v", tc.addr, tc.seq, !tc.want, tc.want)
		}
	}
	// Many claims: no false answer (a collision could only say
	// "recorded" for a slot that is not; at 64 bits, never here).
	big := newSnapshot(nil, nil, 100000)
	for i := range 100000 {
		big.record(claim(fmt.Sprint("c-", i), netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}).String()))
	}
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
		if !big.isRecorded(fmt.Sprint("c-", i), a, 7) || big.isRecorded(fmt.Sprint("c-", i+1), a, 7) || big.isRecorded(fmt.Sprint("c-", i), a, 8) {
			t.Fatalf("claim c-%d's %s: wrong answer", i, a)
		}
	}
}

// TestHashSet: the set holds what was added and nothing else, past the
// size it was made for (it grows), and stores hash 0 as well.
func TestHashSet(t *testing.T) {
	s := newHashSet(10)
	for i := range uint64(10000) {
		s.add(i * 0x9E3779B97F4A7C15) // 0 first
		s.add(i * 0x9E3779B97F4A7C15) // twice: once
	}
	if s.n != 10000 || s.n*4 > len(s.slots)*3 {
		t.Fatalf("%d hashes in %d slots, want 10000 at most 3/4 full", s.n, len(s.slots))
	}
	for i := range uint64(20000) {
		if got := s.has(i * 0x9E3779B97F4A7C15); got != (i < 10000) {
			t.Fatalf("has(hash %d) = %v", i, got)
		}
	}
}
