package allocator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func pool(t testing.TB, name, cidr string, blockSize int) Range {
	t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil || p != p.Masked() {
		t.Fatalf("pool CIDR %q: %v", cidr, err)
	}
	return Range{Pool: name, CIDR: p, BlockSize: blockSize, InUse: true}
}

// TestBlockProperties drives random allocate/release sequences over blocks
// of several shapes and checks, after every step, that no address is held
// twice, every address is inside the block and its pool and not reserved,
// and that the block fills exactly to its usable size.
func TestBlockProperties(t *testing.T) {
	cases := []struct {
		pool      string
		blockSize int
		usable    int // of the first block
	}{
		{"198.51.100.0/29", 26, 6},     // pool smaller than a block: one shared block, network+broadcast reserved
		{"198.51.100.0/24", 26, 63},    // first block loses the network address
		{"198.51.100.0/31", 26, 2},     // RFC 3021: both usable
		{"198.51.100.7/32", 26, 1},     // single address
		{"198.18.0.0/16", 26, 63},      // first of 1024 blocks
		{"2001:db8::/120", 122, 63},    // first block loses the subnet-router anycast
		{"2001:db8::/127", 122, 2},     // tiny v6
		{"2001:db8:1::/48", 116, 4095}, // largest v6 block
	}
	for _, tc := range cases {
		t.Run(tc.pool, func(t *testing.T) {
			p := pool(t, "p", tc.pool, tc.blockSize)
			first, ok := p.BlockAt(bigZero())
			if !ok {
				t.Fatal("no first block")
			}
			b := NewBlock(p, first, "n1")
			if got := b.Usable(); got != tc.usable {
				t.Fatalf("usable = %d, want %d", got, tc.usable)
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.pool))))
			held := map[netip.Addr]Slot{}
			lastSeq := uint64(0)
			for step := 0; step < 4*tc.usable+50; step++ {
				if rng.IntN(3) > 0 || len(held) == 0 {
					claim := fmt.Sprintf("c%d", step)
					addr, seq, changed, err := b.Allocate(claim, "node-a", Cooldown{})
					if len(held) == tc.usable {
						if !errors.Is(err, ErrExhausted) {
							t.Fatalf("step %d: full block gave %v, %v", step, addr, err)
						}
						continue
					}
					if err != nil || !changed {
						t.Fatalf("step %d: allocate: %v changed=%v with %d/%d held", step, err, changed, len(held), tc.usable)
					}
					if _, dup := held[addr]; dup {
						t.Fatalf("step %d: %s handed out twice", step, addr)
					}
					if !first.Contains(addr) || !p.CIDR.Contains(addr) || Reserved(p.CIDR, addr) {
						t.Fatalf("step %d: %s outside %s / %s or reserved", step, addr, first, p.CIDR)
					}
					if seq <= lastSeq {
						t.Fatalf("sequence went from %d to %d", lastSeq, seq)
					}
					lastSeq = seq
					held[addr] = Slot{Claim: claim, Seq: seq}
					// Allocating again for the same claim is idempotent.
					if a2, s2, ch, err := b.Allocate(claim, "node-a", Cooldown{}); err != nil || ch || a2 != addr || s2 != seq {
						t.Fatalf("re-allocate for %s: %v %d %v %v", claim, a2, s2, ch, err)
					}
				} else {
					for addr, s := range held {
						// A stale release (wrong sequence) frees nothing.
						if b.Release(addr, s.Claim, s.Seq+1000, time.Now()) {
							t.Fatalf("stale release freed %s", addr)
						}
						if !b.Release(addr, s.Claim, s.Seq, time.Now()) {
							t.Fatalf("release of %s failed", addr)
						}
						if b.Release(addr, s.Claim, s.Seq, time.Now()) {
							t.Fatalf("second release of %s changed the block", addr)
						}
						delete(held, addr)
						break
					}
				}
				if len(b.Slots) != len(held) || b.Free() != tc.usable-len(held) {
					t.Fatalf("step %d: block has %d slots, free %d; model holds %d", step, len(b.Slots), b.Free(), len(held))
				}
			}
		})
	}
}

// TestReleaseNeverFreesReassigned: an address freed and handed to another
// claim is not freed by the first claim's late release.
func TestReleaseNeverFreesReassigned(t *testing.T) {
	p := pool(t, "p", "198.51.100.0/31", 26)
	b := NewBlock(p, p.CIDR, "")
	a1, s1, _, _ := b.Allocate("old", "node-a", Cooldown{})
	if !b.Release(a1, "old", s1, time.Now()) {
		t.Fatal("release failed")
	}
	// Fill the block so the address comes back to a new claim.
	var got []netip.Addr
	for _, c := range []string{"x", "y"} {
		a, _, _, err := b.Allocate(c, "node-a", Cooldown{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	if got[0] != a1 && got[1] != a1 {
		t.Fatalf("%s was not reassigned: %v", a1, got)
	}
	if b.Release(a1, "old", s1, time.Now()) {
		t.Fatal("stale release freed a reassigned address")
	}
	// Same claim ID reused (container re-added): a new sequence number.
	b2 := NewBlock(p, p.CIDR, "")
	a, s, _, _ := b2.Allocate("same", "node-a", Cooldown{})
	b2.Release(a, "same", s, time.Now())
	_, s2, _, _ := b2.Allocate("same", "node-a", Cooldown{})
	if b2.Release(a, "same", s, time.Now()) && s != s2 {
		t.Fatal("release with the earlier sequence number freed the new allocation")
	}
}

func TestCursorAvoidsImmediateReuse(t *testing.T) {
	p := pool(t, "p", "198.51.100.0/24", 26)
	blk, _ := p.BlockAt(bigZero())
	b := NewBlock(p, blk, "n")
	a1, s1, _, _ := b.Allocate("a", "node-a", Cooldown{})
	b.Release(a1, "a", s1, time.Now())
	a2, _, _, _ := b.Allocate("b", "node-a", Cooldown{})
	if a2 == a1 {
		t.Fatalf("just-freed %s handed out again at once", a1)
	}
}
