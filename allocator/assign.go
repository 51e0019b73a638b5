package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
)

// Assign returns the claim of the attachment, allocating its addresses if
// it has none yet. It is idempotent: a repeated call returns the existing
// claim; a call after a crash reuses the slots the crashed attempt took.
// Dual stack is all or nothing: if one family fails, the addresses already
// taken for the others are released before the error is returned.
//
// Round trips on the common path (the node's block has room): GetClaim
// (unless skipped), GetAffinity (unless given; shared pools skip it), then
// per family GetBlock and UpdateBlock, then CreateClaim.
func (a *Allocator) Assign(ctx context.Context, req Request) (*Claim, error) {
	id := ClaimID(req.Network, req.ContainerID, req.IfName)
	if !req.SkipClaimRead {
		if c, err := a.Store.GetClaim(ctx, id); err == nil {
			return existing(c)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	st := &assignState{a: a, id: id, aff: req.Affinity, cd: a.cooldown()}
	var got []Assigned
	for _, w := range req.Wants {
		as, err := st.want(ctx, w)
		if err != nil {
			a.rollback(ctx, id, got)
			return nil, fmt.Errorf("pod %s: %s: %w", req.Pod, w.family(), err)
		}
		got = append(got, as)
	}
	c := &Claim{ID: id, Network: req.Network, ContainerID: req.ContainerID, IfName: req.IfName, Node: a.Node, Pod: req.Pod, Addresses: got}
	err := a.Store.CreateClaim(ctx, c)
	if errors.Is(err, ErrExists) {
		// A concurrent ADD of the same attachment won. Both found the same
		// slots (a claim holds one slot per block), so release only what
		// the winner does not hold.
		winner, gerr := a.Store.GetClaim(ctx, id)
		if gerr != nil {
			return nil, gerr
		}
		if winner.Released {
			a.rollback(ctx, id, got)
			return existing(winner)
		}
		var extra []Assigned
		for _, as := range got {
			if !slices.ContainsFunc(winner.Addresses, func(w Assigned) bool { return w.Addr == as.Addr && w.Seq == as.Seq }) {
				extra = append(extra, as)
			}
		}
		a.rollback(ctx, id, extra)
		return winner, nil
	}
	if err != nil {
		a.rollback(ctx, id, got)
		return nil, err
	}
	return c, nil
}

// existing returns the attachment's claim found in the store, unless it
// was released: the same attachment added again right after its DEL (rare:
// runtimes give every sandbox a new container ID) must wait until the
// history has recorded the release and the old claim is gone.
func existing(c *Claim) (*Claim, error) {
	if c.Released {
		return nil, fmt.Errorf("%w: the attachment's previous claim %s was released at its DEL and is being recorded in the attribution history; try again in a few seconds", ErrReleasing, c.ID)
	}
	return c, nil
}

// assignState carries what one Assign has read, so each is read once.
type assignState struct {
	a   *Allocator
	id  string
	aff *Affinity
	// locked says the node lock is held (pool's slow path), so in must
	// not take it again.
	locked bool
	// cd is the clock and cooldown of the allocations.
	cd Cooldown
	// cooling holds, per pool and block found full, the addresses it
	// holds back cooling down, for the exhaustion error.
	cooling map[string]map[netip.Prefix]CoolingSummary
}

// full notes a block of pool found full, and how many of its addresses
// are only cooling down; the last look at a block counts.
func (st *assignState) full(pool string, b *Block) {
	n, first := b.CoolingDown(st.cd)
	if n == 0 && st.cooling[pool] == nil {
		return
	}
	if st.cooling == nil {
		st.cooling = map[string]map[netip.Prefix]CoolingSummary{}
	}
	if st.cooling[pool] == nil {
		st.cooling[pool] = map[netip.Prefix]CoolingSummary{}
	}
	st.cooling[pool][b.CIDR] = CoolingSummary{Count: n, First: first, Period: st.cd.Period}
}

// coolingIn sums what full noted of a pool's blocks.
func (st *assignState) coolingIn(pool string) CoolingSummary {
	var sum CoolingSummary
	for _, c := range st.cooling[pool] {
		sum.Add(c)
	}
	return sum
}

// want allocates from the first range of the want that has room.
func (st *assignState) want(ctx context.Context, w Want) (Assigned, error) {
	var full []string
	for _, p := range w.Ranges {
		if !p.InUse {
			if err := st.a.Store.MarkPoolInUse(ctx, p.Pool); err != nil {
				return Assigned{}, fmt.Errorf("pool %q: %w", p.Pool, err)
			}
		}
		as, err := st.inRange(ctx, p)
		if errors.Is(err, ErrExhausted) {
			why := fmt.Sprintf("%q (%s)", p.Pool, p.CIDR)
			if c := st.coolingIn(p.Pool); c.Count > 0 {
				why += ": " + c.String()
			}
			full = append(full, why)
			continue
		}
		if err != nil {
			return Assigned{}, fmt.Errorf("pool %q: %w", p.Pool, err)
		}
		return as, nil
	}
	return Assigned{}, fmt.Errorf("%w: no free address in %s", ErrExhausted, strings.Join(full, "; "))
}

// inRange allocates from one pool's range: its shared block, else the node's blocks,
// else a newly claimed block, else by borrowing from other nodes' blocks.
//
// The fast path tries the node's blocks on their (possibly cached) copies,
// skipping those that look full without reading them. Everything slower
// (the node's blocks are full, or contended) runs under the node lock: the
// affinity is read again, so that when one process has just claimed a new
// block the others queued behind it use that block instead of each
// confirming every full block and claiming one of their own.
//
// Many ADDs at once on one node without the lock all write the node's
// block and mostly lose the optimistic-concurrency race. So each block is
// tried with little patience; when every block is contended, the node
// claims one more block (up to MaxContendedBlocks) to spread the burst,
// and only then waits its turn.
func (st *assignState) inRange(ctx context.Context, p Range) (Assigned, error) {
	if p.Shared() {
		return st.in(ctx, p, p.CIDR, inOpts{create: true})
	}
	if st.aff == nil {
		aff, err := st.a.Store.GetAffinity(ctx, st.a.Node)
		if err != nil {
			return Assigned{}, err
		}
		st.aff = aff
	}
	var (
		held      = st.aff.Blocks[p.Pool]
		tried     = map[netip.Prefix]bool{}
		full      []netip.Prefix // looked full on a cached copy
		contended bool
	)
	// try tries one block; ok says it allocated.
	try := func(cidr netip.Prefix, o inOpts) (as Assigned, ok bool, err error) {
		tried[cidr] = true
		as, err = st.in(ctx, p, cidr, o)
		switch {
		case err == nil:
			return as, true, nil
		case errors.Is(err, errCachedFull):
			full = append(full, cidr)
		case errors.Is(err, errContended):
			contended = true
		case errors.Is(err, ErrExhausted), errors.Is(err, ErrNotFound):
		default:
			return Assigned{}, false, err
		}
		return Assigned{}, false, nil
	}
	// Without the node lock, the node's processes start at a random block
	// to spread their races. With it there are no races on the node, and
	// the same order every time makes an ADD retried after a crash
	// retrace the crashed one's path to the slot it took.
	start := 0
	if len(held) > 1 && st.a.Serialize == nil {
		start = rand.IntN(len(held))
	}
	hint, _ := st.a.Store.(FullHinter)
	for k := range held {
		cidr := held[(start+k)%len(held)]
		if hint != nil && hint.LooksFull(cidr) {
			// Not even read: a node may hold many full blocks.
			tried[cidr] = true
			full = append(full, cidr)
			continue
		}
		if as, ok, err := try(cidr, inOpts{patience: contendedPatience, deferCachedFull: true}); ok || err != nil {
			return as, err
		}
	}

	unlock, err := st.a.lock(ctx)
	if err != nil {
		return Assigned{}, err
	}
	st.locked = true
	defer func() { st.locked = false; unlock() }()
	if st.a.Serialize != nil || st.aff.Cached {
		aff, err := st.a.Store.GetAffinity(ctx, st.a.Node)
		if err != nil {
			return Assigned{}, err
		}
		st.aff = aff
		held = aff.Blocks[p.Pool]
		for _, cidr := range held {
			if tried[cidr] {
				continue
			}
			if as, ok, err := try(cidr, inOpts{patience: contendedPatience, deferCachedFull: true}); ok || err != nil {
				return as, err
			}
		}
	}
	for _, cidr := range full { // confirm, on a fresh read
		if as, ok, err := try(cidr, inOpts{patience: contendedPatience}); ok || err != nil {
			return as, err
		}
	}
	if contended {
		if len(held) < MaxContendedBlocks {
			as, err := st.claimOrBorrow(ctx, p, true)
			if !errors.Is(err, errNoUnclaimed) {
				return as, err
			}
		}
		for _, cidr := range held {
			if as, ok, err := try(cidr, inOpts{}); ok || err != nil {
				return as, err
			}
		}
	}
	return st.claimOrBorrow(ctx, p, false)
}

// Contention tuning: see inRange.
const (
	// contendedPatience is how many write conflicts on one block an ADD
	// accepts before trying the node's next block.
	contendedPatience = 3
	// MaxContendedBlocks bounds the blocks of one pool a node claims to
	// spread contention (blocks claimed because the others are full do
	// not count against it).
	MaxContendedBlocks = 4
)
