package allocator

import (
	"context"
	"net/netip"
)

// Affinity lists the blocks a node has claimed, per pool name.
type Affinity struct {
	Node    string
	Blocks  map[string][]netip.Prefix
	Version string // empty: not stored yet
	// Cached marks a copy that may be stale, as Block.Cached. The engine
	// uses it to find the node's blocks (a block it lacks is found and
	// adopted when the node claims one; a write on a stale copy fails)
	// and reads again before a decision that writes nothing.
	Cached bool
}

// Has reports whether the node holds the block.
func (a *Affinity) Has(pool string, cidr netip.Prefix) bool {
	for _, c := range a.Blocks[pool] {
		if c == cidr {
			return true
		}
	}
	return false
}

// Clone returns a deep copy.
func (a *Affinity) Clone() *Affinity {
	c := &Affinity{Node: a.Node, Version: a.Version, Blocks: make(map[string][]netip.Prefix, len(a.Blocks))}
	for k, v := range a.Blocks {
		c.Blocks[k] = append([]netip.Prefix(nil), v...)
	}
	return c
}

// Store is where allocation state lives. Every write is conditional: an
// update or delete carries the Version it read and fails with ErrConflict
// when the object changed since; a create fails with ErrExists when the name
// is taken. Errors reaching the store wrap ErrUnavailable. Implementations
// must be safe for concurrent use.
type Store interface {
	// GetClaim returns a claim by ID, or ErrNotFound.
	GetClaim(ctx context.Context, id string) (*Claim, error)
	// CreateClaim stores a new claim and sets its Version.
	CreateClaim(ctx context.Context, c *Claim) error
	// DeleteClaim deletes a claim if its version still matches.
	DeleteClaim(ctx context.Context, c *Claim) error

	// GetBlock returns the block with this CIDR, or ErrNotFound. It may
	// return a Cached (possibly stale) copy, but only on the first read of
	// a block by the caller: the engine reads again to confirm what a
	// stale copy could get wrong.
	GetBlock(ctx context.Context, cidr netip.Prefix) (*Block, error)
	// CreateBlock stores a new block (the atomic claim) and sets Version.
	CreateBlock(ctx context.Context, b *Block) error
	// UpdateBlock writes a block if its version still matches and sets
	// the new Version.
	UpdateBlock(ctx context.Context, b *Block) error
	// ClaimedBlocks returns a pool's claimed blocks, each with the node
	// that claimed it ("" for a shared block), without their slots: what
	// a node needs to find an unclaimed block. It may be a moment old: the
	// create is the claim, and fails on a block taken since. Called only
	// when a node needs a new block.
	ClaimedBlocks(ctx context.Context, pool string) (map[netip.Prefix]string, error)
	// PoolBlocks lists the existing blocks of a pool, slots and all. It is
	// called only when every block of the pool is claimed and the node
	// must borrow.
	PoolBlocks(ctx context.Context, pool string) ([]*Block, error)

	// GetAffinity returns the node's affinity, or an empty one with no
	// Version when the node holds no block yet. Like GetBlock, it may
	// return a Cached copy on the caller's first read.
	GetAffinity(ctx context.Context, node string) (*Affinity, error)
	// SaveAffinity creates (no Version) or updates (Version guarded) it.
	SaveAffinity(ctx context.Context, a *Affinity) error

	// MarkPoolInUse adds the allocations finalizer to the pool, so it
	// cannot be deleted from under the addresses about to be handed out.
	MarkPoolInUse(ctx context.Context, pool string) error
}

// FullHinter is an optional capability of a Store that keeps local copies:
// it says, without reading anything, that a block looked full when last
// seen. The engine tries such blocks last, on a fresh read; the hint only
// orders its work and never decides anything.
type FullHinter interface {
	LooksFull(cidr netip.Prefix) bool
}
