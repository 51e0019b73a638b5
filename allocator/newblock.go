package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
)

// errNoUnclaimed: every block of the pool is claimed.
var errNoUnclaimed = errors.New("no unclaimed block")

// claimOrBorrow claims the pool's lowest unclaimed block, or borrows a slot
// from another node's block when every block is claimed. Finding the
// unclaimed block reads the pool's blocks without their slots; only
// borrowing reads them whole.
//
// With claimOnly it does not borrow: it fails with errNoUnclaimed instead.
func (st *assignState) claimOrBorrow(ctx context.Context, p Range, claimOnly bool) (Assigned, error) {
	owners, err := st.a.Store.ClaimedBlocks(ctx, p.Pool)
	if err != nil {
		return Assigned{}, err
	}
	claimed := make(map[netip.Prefix]bool, len(owners))
	var ours []netip.Prefix
	for cidr, node := range owners {
		claimed[cidr] = true
		// A crash between claiming a block and recording the affinity
		// leaves a block of ours that the affinity lacks: adopt it.
		if node == st.a.Node && !st.aff.Has(p.Pool, cidr) {
			ours = append(ours, cidr)
		}
	}
	slices.SortFunc(ours, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	for _, cidr := range ours {
		if err := st.addAffinity(ctx, p.Pool, cidr); err != nil {
			return Assigned{}, err
		}
		if as, err := st.in(ctx, p, cidr, inOpts{}); !errors.Is(err, ErrExhausted) {
			return as, err
		}
	}
	for i := big.NewInt(0); ; i.Add(i, big.NewInt(1)) {
		cidr, ok := p.BlockAt(i)
		if !ok {
			break
		}
		if claimed[cidr] {
			continue
		}
		nb := NewBlock(p, cidr, st.a.Node)
		err := st.a.Store.CreateBlock(ctx, nb)
		if errors.Is(err, ErrExists) {
			// Another node won this block: try the next one.
			claimed[cidr] = true
			continue
		}
		if err != nil {
			return Assigned{}, err
		}
		if err := st.addAffinity(ctx, p.Pool, cidr); err != nil {
			return Assigned{}, err
		}
		return st.in(ctx, p, cidr, inOpts{block: nb})
	}
	if claimOnly {
		return Assigned{}, errNoUnclaimed
	}
	blocks, err := st.a.Store.PoolBlocks(ctx, p.Pool)
	if err != nil {
		return Assigned{}, err
	}
	// A crash after taking a slot in a borrowed block: reuse it.
	for _, b := range blocks {
		if b.Node != st.a.Node {
			if _, _, ok := b.Find(st.id); ok {
				return st.in(ctx, p, b.CIDR, inOpts{block: b})
			}
		}
	}
	// Every block is claimed: borrow, most available first, so the load
	// spreads and one node's block is not drained by all. Addresses
	// cooling down after release are not available.
	avail := make(map[netip.Prefix]int, len(blocks))
	for _, b := range blocks {
		avail[b.CIDR] = b.Available(st.cd)
	}
	slices.SortFunc(blocks, func(x, y *Block) int { return avail[y.CIDR] - avail[x.CIDR] })
	for _, b := range blocks {
		if avail[b.CIDR] == 0 {
			st.full(p.Pool, b)
			continue
		}
		as, err := st.in(ctx, p, b.CIDR, inOpts{block: b})
		if errors.Is(err, ErrExhausted) || errors.Is(err, ErrNotFound) {
			continue
		}
		return as, err
	}
	return Assigned{}, fmt.Errorf("%w: every block of pool %q (%s) is full", ErrExhausted, p.Pool, p.CIDR)
}

// addAffinity records that the node holds a block.
func (st *assignState) addAffinity(ctx context.Context, pool string, cidr netip.Prefix) error {
	return st.a.retry(ctx, func() string { return "affinity of node " + st.a.Node }, 0, func() error {
		if st.aff.Has(pool, cidr) {
			return nil
		}
		next := st.aff.Clone()
		next.Cached = false // once written, it is the store's version
		next.Blocks[pool] = append(next.Blocks[pool], cidr)
		err := st.a.Store.SaveAffinity(ctx, next)
		if err == nil {
			st.aff = next
			return nil
		}
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrExists) {
			return err
		}
		// Another process of the node wrote the affinity first: read
		// it and try again.
		aff, gerr := st.a.Store.GetAffinity(ctx, st.a.Node)
		if gerr != nil {
			return gerr
		}
		st.aff = aff
		return fmt.Errorf("affinity of node %s: %w", st.a.Node, ErrConflict)
	})
}
