package allocator

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Release frees the attachment's addresses and deletes its claim. It is
// idempotent. Without a claim (an ADD that crashed before writing it) it
// frees whatever slots of this node's blocks name the attachment.
func (a *Allocator) Release(ctx context.Context, network, containerID, ifName string) error {
	id := ClaimID(network, containerID, ifName)
	c, err := a.Store.GetClaim(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return a.releaseOrphans(ctx, id)
	}
	if err != nil {
		return err
	}
	return a.ReleaseClaim(ctx, c)
}

// ReleaseClaim deletes a claim, then frees its addresses, each only if its
// slot still holds the claim's sequence number.
//
// The claim goes first so that the release's time (the claim's deletion:
// what the attribution history records, and when the live export stops
// listing the address) comes before the address is free. Neither the
// history nor a firewall fed by the export then ever shows the address
// with two holders, whatever happens between the two writes. A release
// interrupted there leaves slots naming a claim that is gone, or released
// and waiting for the history: the runtime's retried DEL frees them
// (Release), or else the garbage collector.
func (a *Allocator) ReleaseClaim(ctx context.Context, c *Claim) error {
	if err := a.deleteClaim(ctx, c); err != nil {
		return err
	}
	for _, as := range c.Addresses {
		if _, err := a.ReleaseSlot(ctx, as.Block, as.Addr, c.ID, as.Seq); err != nil {
			return err
		}
	}
	return nil
}

// deleteClaim deletes the claim read as c, unless it is gone or was
// replaced by another claim of the same attachment.
func (a *Allocator) deleteClaim(ctx context.Context, c *Claim) error {
	for range 3 {
		err := a.Store.DeleteClaim(ctx, c)
		if !errors.Is(err, ErrConflict) {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		// Changed since read: its metadata only (the history recorder
		// marks claims made before the history was on), or a new claim
		// of the same attachment, which is not this release's to delete.
		now, err := a.Store.GetClaim(ctx, c.ID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !slices.Equal(now.Addresses, c.Addresses) {
			return nil
		}
		c = now
	}
	return fmt.Errorf("%w: deleting claim %s of pod %s", ErrBusy, c.ID, c.Pod)
}

// ReleaseSlot frees addr in its block if it is still held by claim with
// sequence number seq, and reports whether it did. A missing block or a
// reassigned slot is success with nothing freed. The release is recorded
// in the block (Block.Release), so the address cools down before it is
// handed out again.
func (a *Allocator) ReleaseSlot(ctx context.Context, block netip.Prefix, addr netip.Addr, claim string, seq uint64) (bool, error) {
	return a.releaseSlot(ctx, block, addr, claim, seq, true)
}

// releaseSlot is ReleaseSlot; without cool it records no release, for an
// address no pod was ever given.
func (a *Allocator) releaseSlot(ctx context.Context, block netip.Prefix, addr netip.Addr, claim string, seq uint64, cool bool) (bool, error) {
	freed := false
	err := a.retry(ctx, func() string { return "releasing " + addr.String() + " from block " + block.String() }, 0, func() error {
		unlock, err := a.lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		now := a.now()
		b, err := a.Store.GetBlock(ctx, block)
		if err == nil && !b.Release(addr, claim, seq, now) {
			if !b.Cached {
				return nil // reassigned or already free
			}
			// A possibly stale copy says there is nothing to free:
			// ask the store itself.
			if b, err = a.Store.GetBlock(ctx, block); err == nil && !b.Release(addr, claim, seq, now) {
				return nil
			}
		}
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !cool {
			off, _ := b.Offset(addr)
			delete(b.Released, off)
		}
		if err := a.Store.UpdateBlock(ctx, b); err != nil {
			return err
		}
		freed = true
		return nil
	})
	return freed, err
}

// releaseOrphans frees the slots of this node's blocks held by a claim that
// was never written.
func (a *Allocator) releaseOrphans(ctx context.Context, id string) error {
	aff, err := a.Store.GetAffinity(ctx, a.Node)
	if err == nil && aff.Cached {
		aff, err = a.Store.GetAffinity(ctx, a.Node)
	}
	if err != nil {
		return err
	}
	for _, cidrs := range aff.Blocks {
		for _, cidr := range cidrs {
			// A cached copy is enough to find the slot (ReleaseSlot
			// reads the block again before freeing it). One that
			// misses a slot written just before a crash leaves that
			// slot to the cluster's garbage collector: DEL is best
			// effort, and reading every block of the node would make
			// each DEL without a claim cost a request per block.
			b, err := a.Store.GetBlock(ctx, cidr)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if addr, s, ok := b.Find(id); ok {
				if _, err := a.ReleaseSlot(ctx, cidr, addr, id, s.Seq); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// rollback frees what a failed Assign took. Best effort: what cannot be
// released now is freed by the garbage collector, as no claim names it.
// No pod was given these addresses, so they do not cool down: a runtime
// retrying an ADD that fails (dual stack with one family exhausted) would
// otherwise take another address out of use at every retry.
func (a *Allocator) rollback(ctx context.Context, id string, got []Assigned) {
	ctx = context.WithoutCancel(ctx)
	for _, as := range got {
		_, _ = a.releaseSlot(ctx, as.Block, as.Addr, id, as.Seq, false)
	}
}
