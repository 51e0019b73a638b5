package allocator

import (
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// Slot is one used address of a block.
type Slot struct {
	// Claim is the ID of the claim holding the address.
	Claim string
	// Node is the node whose claim holds the address. Stored with the
	// slot so that the API server's admission policy can let a node's
	// plugin add and remove only its own slots, in a block of any node
	// (borrowing), without reading the claim.
	Node string
	// Seq is the block's sequence number when the address was handed out.
	Seq uint64
}

// Cooling records a recent release of a slot: the address is not handed
// out again until the cooldown has passed since At, so a firewall's
// connection state and logs for it cannot be mistaken for the next pod's.
type Cooling struct {
	// Node is the node whose slot it was (the slot's Node).
	Node string
	// At is when the slot was freed.
	At time.Time
}

// Cooldown is the clock and the cooldown one change of a block works
// with: a released address is not handed out again until Period has
// passed since its release. The zero value hands it out again at once
// (the cursor still makes it the block's last choice).
type Cooldown struct {
	// Now is the time of the change.
	Now time.Time
	// Period is the cooldown; zero or less turns it off.
	Period time.Duration
}

// Until reports until when the release r holds its address back, and
// whether it still does at cd.Now. A release dated more than a whole
// cooldown ahead of cd.Now (a node's clock far off, or a hand edit) holds
// nothing: it would hold the address back longer than any cooldown. One
// up to a cooldown ahead is honoured: node clocks differ a little.
func (cd Cooldown) Until(r Cooling) (until time.Time, holds bool) {
	if cd.Period <= 0 || r.At.After(cd.Now.Add(cd.Period)) {
		return time.Time{}, false
	}
	until = r.At.Add(cd.Period)
	return until, cd.Now.Before(until)
}

// Block is a contiguous range of a pool's addresses, claimed by one node
// (or shared by all when the pool is no larger than a block). It is a value
// the engine reads from the store, changes with the pure methods below and
// writes back guarded by Version.
type Block struct {
	// CIDR is the block's range.
	CIDR netip.Prefix
	// Pool is the name of the pool the block belongs to.
	Pool string
	// PoolCIDR is the pool's range (for its reserved addresses).
	PoolCIDR netip.Prefix
	// Node is the node that claimed the block; empty for a shared block.
	Node string
	// NextSeq is the sequence number the next allocation gets.
	NextSeq uint64
	// Cursor is the offset where the search for a free slot starts. It
	// moves past each allocation, so a just-freed address is reused last:
	// a firewall log or a conntrack entry for it is less likely to be
	// mistaken for the next pod's.
	Cursor int
	// Slots maps used offsets to their holders.
	Slots map[int]Slot
	// Released records, per free offset, its last release (Release sets
	// it): Allocate skips the offset until its cooldown has passed, and
	// drops the records no longer needed whenever it writes the block
	// anyway. One record per offset, so never more than the block's
	// size; a record for an offset in Slots is stale and means nothing.
	Released map[int]Cooling
	// Version is the store's version of the object (resourceVersion).
	Version string
	// Cached marks a copy that may be stale (from a node-local cache). The
	// engine trusts it only for a conditional write, which fails if it
	// was stale; a decision that writes nothing (full, already held, not
	// held) is made again on a fresh read.
	Cached bool
}

// Size returns the number of addresses in the block.
func (b *Block) Size() int { return 1 << (b.CIDR.Addr().BitLen() - b.CIDR.Bits()) }

// Addr returns the address at an offset.
func (b *Block) Addr(off int) netip.Addr {
	return addOffsetInt(b.CIDR.Addr(), off)
}

// Offset returns the offset of addr; ok is false when it is not in the block.
func (b *Block) Offset(addr netip.Addr) (int, bool) {
	if !b.CIDR.Contains(addr) {
		return 0, false
	}
	return offsetOf(b.CIDR.Addr(), addr), true
}

// Usable returns how many addresses the block can ever hand out.
func (b *Block) Usable() int {
	n := b.Size()
	for _, r := range reservedOf(b.PoolCIDR) {
		if b.CIDR.Contains(r) {
			n--
		}
	}
	return n
}

// Free returns how many addresses the block holds for no one, cooling
// down or not: Available says how many it can hand out now.
func (b *Block) Free() int { return b.Usable() - len(b.Slots) }

// Available returns how many addresses the block can hand out at cd: the
// free ones less those cooling down.
func (b *Block) Available(cd Cooldown) int {
	n, _ := b.CoolingDown(cd)
	return b.Free() - n
}

// CoolingDown returns how many free addresses the block holds back at cd
// because they were released less than a cooldown ago, and when the first
// of them is free again.
func (b *Block) CoolingDown(cd Cooldown) (n int, first time.Time) {
	if cd.Period <= 0 {
		return 0, time.Time{}
	}
	size := b.Size()
	for off, r := range b.Released {
		if _, used := b.Slots[off]; used || off < 0 || off >= size || Reserved(b.PoolCIDR, b.Addr(off)) {
			continue
		}
		if until, holds := cd.Until(r); holds {
			n++
			if first.IsZero() || until.Before(first) {
				first = until
			}
		}
	}
	return n, first
}

// Find returns the address a claim holds in the block, if any. A claim holds
// at most one address per block: the engine reuses it instead of allocating
// again, which makes a retried ADD after a crash idempotent.
func (b *Block) Find(claim string) (netip.Addr, Slot, bool) {
	for off, s := range b.Slots {
		if s.Claim == claim {
			return b.Addr(off), s, true
		}
	}
	return netip.Addr{}, Slot{}, false
}

// Allocate hands the claim, made on node, a free address and returns it with
// its sequence number, skipping the addresses cd says are cooling down. If
// the claim already holds one, that is returned and changed is false. When
// it changes the block it also drops the release records cd no longer
// needs (all of them when the cooldown is off). It fails with ErrExhausted
// when the block is full, with a *CoolingError when it is full only
// because addresses are cooling down.
func (b *Block) Allocate(claim, node string, cd Cooldown) (addr netip.Addr, seq uint64, changed bool, err error) {
	if a, s, ok := b.Find(claim); ok {
		return a, s.Seq, false, nil
	}
	size := b.Size()
	for i := 0; i < size; i++ {
		off := (b.Cursor + i) % size
		if _, used := b.Slots[off]; used {
			continue
		}
		if r, released := b.Released[off]; released {
			if _, holds := cd.Until(r); holds {
				continue
			}
		}
		a := b.Addr(off)
		if Reserved(b.PoolCIDR, a) {
			continue
		}
		if b.Slots == nil {
			b.Slots = make(map[int]Slot)
		}
		b.NextSeq++
		seq = b.NextSeq
		b.Slots[off] = Slot{Claim: claim, Node: node, Seq: seq}
		b.Cursor = (off + 1) % size
		b.prune(cd)
		return a, seq, true, nil
	}
	what := fmt.Sprintf("block %s of pool %q is full", b.CIDR, b.Pool)
	if n, first := b.CoolingDown(cd); n > 0 {
		return netip.Addr{}, 0, false, &CoolingError{What: what, Cooling: CoolingSummary{Count: n, First: first, Period: cd.Period}}
	}
	return netip.Addr{}, 0, false, fmt.Errorf("%w: %s", ErrExhausted, what)
}

// prune drops the release records that hold nothing back at cd, and those
// of offsets handed out again.
func (b *Block) prune(cd Cooldown) {
	for off, r := range b.Released {
		_, used := b.Slots[off]
		if _, holds := cd.Until(r); used || !holds {
			delete(b.Released, off)
		}
	}
}

// Release frees addr if, and only if, it is still held by claim with
// sequence number seq, and records the release at now (with the slot's
// node), so that Allocate holds the address back for the cooldown. It
// reports whether anything changed: false means the address was already
// free or has been reassigned, which callers treat as success (release is
// idempotent), and records nothing.
func (b *Block) Release(addr netip.Addr, claim string, seq uint64, now time.Time) bool {
	off, ok := b.Offset(addr)
	if !ok {
		return false
	}
	s, used := b.Slots[off]
	if !used || s.Claim != claim || s.Seq != seq {
		return false
	}
	delete(b.Slots, off)
	if b.Released == nil {
		b.Released = make(map[int]Cooling)
	}
	b.Released[off] = Cooling{Node: s.Node, At: now}
	return true
}

// Offsets returns the used offsets in ascending order.
func (b *Block) Offsets() []int {
	out := make([]int, 0, len(b.Slots))
	for off := range b.Slots {
		out = append(out, off)
	}
	sort.Ints(out)
	return out
}

// Clone returns a deep copy, so a failed write leaves the caller's copy
// untouched.
func (b *Block) Clone() *Block {
	c := *b
	c.Slots = make(map[int]Slot, len(b.Slots))
	for k, v := range b.Slots {
		c.Slots[k] = v
	}
	if b.Released != nil {
		c.Released = make(map[int]Cooling, len(b.Released))
		for k, v := range b.Released {
			c.Released[k] = v
		}
	}
	return &c
}

// NewBlock returns an empty block of a pool.
func NewBlock(p Range, cidr netip.Prefix, node string) *Block {
	return &Block{CIDR: cidr, Pool: p.Pool, PoolCIDR: p.CIDR, Node: node, Slots: map[int]Slot{}}
}

func addOffsetInt(a netip.Addr, off int) netip.Addr {
	if a.Is4() {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v += uint32(off)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b := a.As16()
	carry := uint64(off)
	for i := 15; i >= 0 && carry > 0; i-- {
		s := uint64(b[i]) + carry&0xff
		b[i] = byte(s)
		carry = carry>>8 + s>>8
	}
	return netip.AddrFrom16(b)
}

// MaxBlockSlots is the most addresses a block may have: the smallest block
// sizes policy allows (/20, /116) have 4,096, and the block object lists
// its used slots, which must stay far from etcd's object size limit.
const MaxBlockSlots = 4096

// Check verifies the block's invariants on what was read back from the
// store, so that a hand-edited or corrupted object fails with a clear
// error instead of steering the allocator out of the block's range: the
// ranges are canonical and the block lies in its pool; the block is no
// larger than MaxBlockSlots; the cursor and every slot's offset are inside
// the block; no slot holds a reserved address; every slot names a claim
// and a sequence number the block has handed out; every release record is
// of an offset inside the block and has a time. A release record of an
// offset in use again is left alone: it is stale, holds nothing back, and
// the next allocation drops it.
func (b *Block) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: block %s: %s", ErrInvalidState, b.CIDR, fmt.Sprintf(format, args...))
	}
	switch {
	case !b.CIDR.IsValid() || b.CIDR != b.CIDR.Masked():
		return bad("cidr is not a canonical prefix")
	case !b.PoolCIDR.IsValid() || b.PoolCIDR != b.PoolCIDR.Masked():
		return bad("poolCIDR %s is not a canonical prefix", b.PoolCIDR)
	case b.CIDR.Addr().Is4() != b.PoolCIDR.Addr().Is4() || b.PoolCIDR.Bits() > b.CIDR.Bits() || !b.PoolCIDR.Contains(b.CIDR.Addr()):
		return bad("not inside its pool's range %s", b.PoolCIDR)
	case b.CIDR.Addr().BitLen()-b.CIDR.Bits() > 12:
		return bad("larger than %d addresses", MaxBlockSlots)
	}
	size := b.Size()
	if b.Cursor < 0 || b.Cursor >= size {
		return bad("cursor %d outside its %d addresses", b.Cursor, size)
	}
	// Every block read on an ADD passes here: one pass over the slots,
	// unsorted and without allocating; the pool's few reserved addresses
	// are looked up instead of tested per slot.
	for _, r := range reservedOf(b.PoolCIDR) {
		if off, in := b.Offset(r); in {
			if _, used := b.Slots[off]; used {
				return bad("slot %d holds the reserved address %s", off, r)
			}
		}
	}
	for off, s := range b.Slots {
		switch {
		case off < 0 || off >= size:
			return bad("slot %d outside its %d addresses", off, size)
		case s.Claim == "":
			return bad("slot %d names no claim", off)
		case s.Seq == 0 || s.Seq > b.NextSeq:
			return bad("slot %d has sequence number %d, the block has handed out %d", off, s.Seq, b.NextSeq)
		}
	}
	for off, r := range b.Released {
		switch {
		case off < 0 || off >= size:
			return bad("release record of slot %d outside its %d addresses", off, size)
		case r.At.IsZero():
			return bad("release record of slot %d has no time", off)
		}
	}
	return nil
}
