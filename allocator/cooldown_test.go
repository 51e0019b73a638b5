package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// t0 is the tests' clock origin.
var t0 = time.Date(2026, 11, 29, 14, 27, 5, 0, time.UTC)

// fullBlock returns the one shared block of a /29 pool (six usable
// addresses, offsets 1 to 6) with every address held, by node-a.
func fullBlock(t *testing.T) (*Block, map[int]Slot) {
	t.Helper()
	p := pool(t, "p", "198.51.100.0/29", 26)
	b := NewBlock(p, p.CIDR, "")
	held := map[int]Slot{}
	for i := 0; i < 6; i++ {
		claim := fmt.Sprintf("c%d", i)
		addr, seq, _, err := b.Allocate(claim, "node-a", Cooldown{Now: t0, Period: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		off, _ := b.Offset(addr)
		held[off] = Slot{Claim: claim, Node: "node-a", Seq: seq}
	}
	return b, held
}

// TestCooldownBlock: a released address is skipped while it cools down and
// handed out again after; a cooldown of zero reuses it at once; the block
// full only because of cooling addresses says how many and when the first
// is free again.
func TestCooldownBlock(t *testing.T) {
	const period = 5 * time.Minute
	type release struct {
		off int
		at  time.Duration // after t0
	}
	cases := []struct {
		name     string
		releases []release
		cooldown time.Duration
		now      time.Duration // after t0
		// want is the offsets handed out, in order, until the block is
		// full.
		want []int
		// wantErr is the exhaustion error after them.
		wantErr string
		// left is the release records left after the last allocation.
		left []int
	}{
		{name: "within the cooldown: skipped, the block is full",
			releases: []release{{3, 0}}, cooldown: period, now: time.Minute,
			wantErr: `pool exhausted: block 198.51.100.0/29 of pool "p" is full: 1 address cooling down after release (ipam.cooldown 5m0s), the first free again at 2026-11-29T14:32:05Z`,
			left:    []int{3}},
		{name: "one second before the end: still skipped",
			releases: []release{{3, 0}}, cooldown: period, now: period - time.Second,
			wantErr: "1 address cooling down", left: []int{3}},
		{name: "cooldown over: handed out again",
			releases: []release{{3, 0}}, cooldown: period, now: period,
			want: []int{3}, wantErr: `pool exhausted: block 198.51.100.0/29 of pool "p" is full`},
		{name: "cooldown off: handed out at once, every record dropped",
			releases: []release{{3, 0}, {5, 0}}, cooldown: 0, now: 0,
			want: []int{3, 5}},
		{name: "two cooling, the first free again is the earlier release",
			releases: []release{{5, 0}, {2, 2 * time.Minute}}, cooldown: period, now: 3 * time.Minute,
			wantErr: `2 addresses cooling down after release (ipam.cooldown 5m0s), the first free again at 2026-11-29T14:32:05Z`,
			left:    []int{2, 5}},
		{name: "one over, one cooling: the cooled one is reused, the other kept",
			releases: []release{{5, 0}, {2, 2 * time.Minute}}, cooldown: period, now: 6 * time.Minute,
			want: []int{5}, wantErr: `1 address cooling down after release (ipam.cooldown 5m0s), the first free again at 2026-11-29T14:34:05Z`,
			left: []int{2}},
		{name: "a release dated more than a cooldown ahead holds nothing",
			releases: []release{{4, 20 * time.Minute}}, cooldown: period, now: time.Minute,
			want: []int{4}},
		{name: "a release dated a little ahead (clock skew) is honoured",
			releases: []release{{4, 2 * time.Minute}}, cooldown: period, now: time.Minute,
			wantErr: "the first free again at 2026-11-29T14:34:05Z", left: []int{4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, held := fullBlock(t)
			for _, r := range tc.releases {
				s := held[r.off]
				if !b.Release(b.Addr(r.off), s.Claim, s.Seq, t0.Add(r.at)) {
					t.Fatalf("release of slot %d failed", r.off)
				}
			}
			cd := Cooldown{Now: t0.Add(tc.now), Period: tc.cooldown}
			var got []int
			var err error
			for i := 0; i < 8; i++ {
				var addr netip.Addr
				var changed bool
				addr, _, changed, err = b.Allocate(fmt.Sprintf("new%d", i), "node-b", cd)
				if err != nil {
					break
				}
				if !changed {
					t.Fatal("a new claim changed nothing")
				}
				off, _ := b.Offset(addr)
				got = append(got, off)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("handed out offsets %v, want %v", got, tc.want)
			}
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("after %v: %v, want ErrExhausted", got, err)
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.wantErr)
			}
			var ce *CoolingError
			if cooling := errors.As(err, &ce); cooling != (len(tc.left) > 0) {
				t.Errorf("error %q is a CoolingError: %v; addresses left cooling: %v", err, cooling, tc.left)
			}
			var left []int
			for off := 0; off < b.Size(); off++ {
				if _, ok := b.Released[off]; ok {
					left = append(left, off)
				}
			}
			if fmt.Sprint(left) != fmt.Sprint(tc.left) {
				t.Errorf("release records left %v, want %v", left, tc.left)
			}
			if n := b.Available(cd); n != 0 {
				t.Errorf("full block: %d available", n)
			}
			if n, _ := b.CoolingDown(cd); n != len(tc.left) {
				t.Errorf("%d cooling down, want %d", n, len(tc.left))
			}
			if err := b.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCooldownRecordsOnlyRealReleases: a stale release (wrong sequence
// number or claim) records nothing; a real one records the slot's node,
// not the caller's, at the time given.
func TestCooldownRecordsOnlyRealReleases(t *testing.T) {
	b, held := fullBlock(t)
	s := held[2]
	for _, stale := range []struct {
		claim string
		seq   uint64
	}{{s.Claim, s.Seq + 1}, {s.Claim, s.Seq - 1}, {"someone-else", s.Seq}} {
		if b.Release(b.Addr(2), stale.claim, stale.seq, t0) {
			t.Fatalf("stale release %+v freed the slot", stale)
		}
	}
	if len(b.Released) != 0 {
		t.Fatalf("stale releases recorded %v", b.Released)
	}
	at := t0.Add(time.Minute)
	if !b.Release(b.Addr(2), s.Claim, s.Seq, at) {
		t.Fatal("release failed")
	}
	if b.Release(b.Addr(2), s.Claim, s.Seq, at.Add(time.Minute)) {
		t.Fatal("second release changed the block")
	}
	if got := b.Released; len(got) != 1 || got[2] != (Cooling{Node: "node-a", At: at}) {
		t.Fatalf("records %v, want slot 2 by node-a at %s", got, at)
	}
	if b.Free() != 1 || b.Available(Cooldown{Now: at, Period: time.Minute}) != 0 || b.Available(Cooldown{Now: at.Add(time.Minute), Period: time.Minute}) != 1 {
		t.Fatalf("free %d; available at the release %d, a cooldown later %d", b.Free(),
			b.Available(Cooldown{Now: at, Period: time.Minute}), b.Available(Cooldown{Now: at.Add(time.Minute), Period: time.Minute}))
	}
	// A clone owns its records.
	c := b.Clone()
	delete(c.Released, 2)
	if len(b.Released) != 1 {
		t.Fatal("a clone shares the release records")
	}
}

// TestCooldownRecordBounded: under churn with the clock running, the
// records never outnumber the block's free addresses, and after an
// allocation none is left that holds nothing back; with the cooldown off
// an allocation drops them all.
func TestCooldownRecordBounded(t *testing.T) {
	for _, period := range []time.Duration{0, 30 * time.Second, 5 * time.Minute} {
		t.Run(period.String(), func(t *testing.T) {
			p := pool(t, "p", "198.51.100.0/24", 26)
			blk, _ := p.BlockAt(bigZero())
			b := NewBlock(p, blk, "n")
			now := t0
			held := map[netip.Addr]Slot{}
			most := 0
			for step := 0; step < 3000; step++ {
				now = now.Add(time.Second)
				cd := Cooldown{Now: now, Period: period}
				if step%3 != 2 {
					claim := fmt.Sprint("c", step)
					addr, seq, _, err := b.Allocate(claim, "node-a", cd)
					if errors.Is(err, ErrExhausted) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					held[addr] = Slot{Claim: claim, Seq: seq}
					for off, r := range b.Released {
						if _, holds := cd.Until(r); !holds {
							t.Fatalf("step %d: after an allocation, slot %d's record of %s holds nothing back and was kept", step, off, r.At)
						}
						if _, used := b.Slots[off]; used {
							t.Fatalf("step %d: slot %d is in use and still has a release record", step, off)
						}
					}
				} else {
					for addr, s := range held {
						if !b.Release(addr, s.Claim, s.Seq, now) {
							t.Fatal("release failed")
						}
						delete(held, addr)
						break
					}
				}
				if len(b.Released) > b.Free() {
					t.Fatalf("step %d: %d release records, %d free addresses", step, len(b.Released), b.Free())
				}
				most = max(most, len(b.Released))
				if err := b.Check(); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("at most %d release records in a block of %d", most, b.Size())
		})
	}
}

// TestCheckReleaseRecords: a record outside the block or without a time is
// invalid state; one of a slot in use again is stale, and allowed.
func TestCheckReleaseRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  int
		c    Cooling
		ok   bool
	}{
		{"outside the block", 8, Cooling{Node: "n", At: t0}, false},
		{"negative", -1, Cooling{Node: "n", At: t0}, false},
		{"no time", 3, Cooling{Node: "n"}, false},
		{"slot in use again", 3, Cooling{Node: "n", At: t0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := fullBlock(t)
			b.Released = map[int]Cooling{tc.off: tc.c}
			if err := b.Check(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidState)) {
				t.Fatalf("Check: %v, want ok %v", err, tc.ok)
			}
		})
	}
}
