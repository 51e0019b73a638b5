package allocator

import (
	"context"
	"errors"
	"net/netip"
)

// inOpts tune one call of in.
type inOpts struct {
	// block is the block when the caller has just read it.
	block *Block
	// create makes the (shared) block when it does not exist yet.
	create bool
	// patience > 0 gives up with errContended after that many conflicts
	// in a row.
	patience int
	// deferCachedFull returns errCachedFull, instead of reading the block
	// again, when a cached copy says it is full.
	deferCachedFull bool
}

// errCachedFull: a possibly stale cached copy says the block is full.
var errCachedFull = errors.New("block full (cached copy)")

// in takes a slot in one block.
func (st *assignState) in(ctx context.Context, p Range, cidr netip.Prefix, o inOpts) (Assigned, error) {
	b := o.block
	var as Assigned
	err := st.a.retry(ctx, func() string { return "block " + cidr.String() }, o.patience, func() error {
		unlock := func() {}
		if !st.locked {
			var err error
			if unlock, err = st.a.lock(ctx); err != nil {
				return err
			}
		}
		defer unlock()
		var err error
		if b == nil {
			if b, err = st.readBlock(ctx, p, cidr, o.create); err != nil {
				return err
			}
		}
		nb := b.Clone()
		addr, seq, changed, err := nb.Allocate(st.id, st.a.Node, st.cd)
		if b.Cached && (err != nil || !changed) {
			if errors.Is(err, ErrExhausted) && o.deferCachedFull {
				return errCachedFull
			}
			// Full or already held, by a copy that may be stale: read
			// the block itself before deciding.
			if b, err = st.a.Store.GetBlock(ctx, cidr); err != nil {
				return err
			}
			nb = b.Clone()
			addr, seq, changed, err = nb.Allocate(st.id, st.a.Node, st.cd)
		}
		if errors.Is(err, ErrExhausted) {
			st.full(p.Pool, nb)
		}
		if err != nil {
			return err
		}
		as = Assigned{Pool: p.Pool, PoolCIDR: p.CIDR, Block: cidr, Addr: addr, Seq: seq}
		if !changed {
			return nil
		}
		b = nil // after a conflict, read it again
		return st.a.Store.UpdateBlock(ctx, nb)
	})
	if err != nil {
		return Assigned{}, err
	}
	return as, nil
}

// readBlock reads a block. With create it makes the (shared) block when it
// does not exist yet, or reads the one a racing node has just made.
func (st *assignState) readBlock(ctx context.Context, p Range, cidr netip.Prefix, create bool) (*Block, error) {
	b, err := st.a.Store.GetBlock(ctx, cidr)
	if !create || !errors.Is(err, ErrNotFound) {
		return b, err
	}
	b = NewBlock(p, cidr, "")
	if err := st.a.Store.CreateBlock(ctx, b); errors.Is(err, ErrExists) {
		return st.a.Store.GetBlock(ctx, cidr)
	} else if err != nil {
		return nil, err
	}
	return b, nil
}
