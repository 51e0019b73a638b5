package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DefaultMaxConflicts bounds the optimistic-concurrency retries of one
// write. Many pods starting at once on a node all write that node's block;
// each retry costs a read and a write, so the bound is generous.
const DefaultMaxConflicts = 64

// Allocator hands out and releases addresses for one node. It holds no
// state between calls: everything lives in the Store, so any number of
// plugin processes may run it at once.
type Allocator struct {
	Store Store
	// Node is the node this allocator works for.
	Node string
	// MaxConflicts bounds retries after ErrConflict; 0 means
	// DefaultMaxConflicts.
	MaxConflicts int
	// Serialize, when set, is held around each read-modify-write of a
	// block, allocating or releasing. The CNI plugin passes a node-local file lock, so that the
	// plugin processes of one node queue for their block instead of
	// racing for it: a lost race costs the API server a read and a write
	// for nothing. Correctness never depends on it: every write is still
	// guarded by resourceVersion, and other nodes do not take the lock.
	Serialize func(ctx context.Context) (unlock func(), err error)
}

// Request asks for one address per wanted family for a CNI attachment.
type Request struct {
	Network     string
	ContainerID string
	IfName      string
	Pod         PodRef
	Wants       []Want
	// SkipClaimRead skips the lookup of an existing claim. Assign stays
	// idempotent without it: a slot the attachment already holds in a
	// block is reused, and an existing claim makes the claim's create
	// fail, upon which Assign returns that claim and frees what it took.
	// A repeated ADD then costs more; every first ADD one read less.
	SkipClaimRead bool
	// Affinity, when set, is the node's affinity the caller has just read
	// (in parallel with its other reads), so Assign skips that read.
	Affinity *Affinity
}

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
			return c, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	st := &assignState{a: a, id: id, aff: req.Affinity}
	var got []Assigned
	for _, w := range req.Wants {
		as, err := st.family(ctx, w)
		if err != nil {
			a.rollback(ctx, id, got)
			return nil, fmt.Errorf("pod %s: %s: %w", req.Pod, w.Family, err)
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

// Get returns the attachment's claim, or ErrNotFound.
func (a *Allocator) Get(ctx context.Context, network, containerID, ifName string) (*Claim, error) {
	return a.Store.GetClaim(ctx, ClaimID(network, containerID, ifName))
}

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

// ReleaseClaim frees a claim's addresses, each only if its slot still holds
// the claim's sequence number, then deletes the claim.
func (a *Allocator) ReleaseClaim(ctx context.Context, c *Claim) error {
	for _, as := range c.Addresses {
		if _, err := a.ReleaseSlot(ctx, as.Block, as.Addr, c.ID, as.Seq); err != nil {
			return err
		}
	}
	if err := a.Store.DeleteClaim(ctx, c); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// ReleaseSlot frees addr in its block if it is still held by claim with
// sequence number seq, and reports whether it did. A missing block or a
// reassigned slot is success with nothing freed.
func (a *Allocator) ReleaseSlot(ctx context.Context, block netip.Prefix, addr netip.Addr, claim string, seq uint64) (bool, error) {
	for try := 0; ; try++ {
		unlock, err := a.lock(ctx)
		if err != nil {
			return false, err
		}
		b, err := a.Store.GetBlock(ctx, block)
		if errors.Is(err, ErrNotFound) {
			unlock()
			return false, nil
		}
		if err != nil {
			unlock()
			return false, err
		}
		if !b.Release(addr, claim, seq) {
			unlock()
			if b.Cached {
				// A possibly stale copy says there is nothing to free:
				// ask the store itself.
				try--
				continue
			}
			return false, nil
		}
		err = a.Store.UpdateBlock(ctx, b)
		unlock()
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrConflict) {
			return false, err
		}
		if err := a.backoff(ctx, try); err != nil {
			return false, fmt.Errorf("releasing %s from block %s: %w", addr, block, err)
		}
	}
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

func (a *Allocator) rollback(ctx context.Context, id string, got []Assigned) {
	// Best effort: what cannot be released now is freed by the garbage
	// collector, as no claim names it.
	ctx = context.WithoutCancel(ctx)
	for _, as := range got {
		_, _ = a.ReleaseSlot(ctx, as.Block, as.Addr, id, as.Seq)
	}
}

// lock takes Serialize, if any.
func (a *Allocator) lock(ctx context.Context) (func(), error) {
	if a.Serialize == nil {
		return func() {}, nil
	}
	return a.Serialize(ctx)
}

func (a *Allocator) maxConflicts() int {
	if a.MaxConflicts > 0 {
		return a.MaxConflicts
	}
	return DefaultMaxConflicts
}

// backoff sleeps a short, jittered, growing time after the try-th conflict,
// or fails with ErrBusy when the retries are used up.
func (a *Allocator) backoff(ctx context.Context, try int) error {
	if try+1 >= a.maxConflicts() {
		return fmt.Errorf("%w: %d write conflicts in a row", ErrBusy, try+1)
	}
	d := time.Duration(min(try+1, 20)) * time.Millisecond
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// assignState carries what one Assign has read, so each is read once.
type assignState struct {
	a   *Allocator
	id  string
	aff *Affinity
	// locked says the node lock is held (pool's slow path), so in must
	// not take it again.
	locked bool
}

// family allocates from the first pool of the want that has room.
func (st *assignState) family(ctx context.Context, w Want) (Assigned, error) {
	var full []string
	for _, p := range w.Pools {
		if !p.InUse {
			if err := st.a.Store.MarkPoolInUse(ctx, p.Name); err != nil {
				return Assigned{}, fmt.Errorf("pool %q: %w", p.Name, err)
			}
		}
		as, err := st.pool(ctx, p)
		if errors.Is(err, ErrExhausted) {
			full = append(full, fmt.Sprintf("%q (%s)", p.Name, p.CIDR))
			continue
		}
		if err != nil {
			return Assigned{}, fmt.Errorf("pool %q: %w", p.Name, err)
		}
		return as, nil
	}
	return Assigned{}, fmt.Errorf("%w: no free address in %s", ErrExhausted, strings.Join(full, ", "))
}

// pool allocates from one pool: its shared block, else the node's blocks,
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
func (st *assignState) pool(ctx context.Context, p Pool) (Assigned, error) {
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
		held      = st.aff.Blocks[p.Name]
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
		held = aff.Blocks[p.Name]
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

// Contention tuning: see pool.
const (
	// contendedPatience is how many write conflicts on one block an ADD
	// accepts before trying the node's next block.
	contendedPatience = 3
	// MaxContendedBlocks bounds the blocks of one pool a node claims to
	// spread contention (blocks claimed because the others are full do
	// not count against it).
	MaxContendedBlocks = 4
)

// errContended: a block lost too many races in a row; try another.
var errContended = errors.New("block contended")

// errNoUnclaimed: every block of the pool is claimed.
var errNoUnclaimed = errors.New("no unclaimed block")

// claimOrBorrow claims the pool's lowest unclaimed block, or borrows a slot
// from another node's block when every block is claimed. Finding the
// unclaimed block reads the pool's blocks without their slots; only
// borrowing reads them whole.
//
// With claimOnly it does not borrow: it fails with errNoUnclaimed instead.
func (st *assignState) claimOrBorrow(ctx context.Context, p Pool, claimOnly bool) (Assigned, error) {
	owners, err := st.a.Store.ClaimedBlocks(ctx, p.Name)
	if err != nil {
		return Assigned{}, err
	}
	claimed := make(map[netip.Prefix]bool, len(owners))
	var ours []netip.Prefix
	for cidr, node := range owners {
		claimed[cidr] = true
		// A crash between claiming a block and recording the affinity
		// leaves a block of ours that the affinity lacks: adopt it.
		if node == st.a.Node && !st.aff.Has(p.Name, cidr) {
			ours = append(ours, cidr)
		}
	}
	slices.SortFunc(ours, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	for _, cidr := range ours {
		if err := st.addAffinity(ctx, p.Name, cidr); err != nil {
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
		if err := st.addAffinity(ctx, p.Name, cidr); err != nil {
			return Assigned{}, err
		}
		return st.in(ctx, p, cidr, inOpts{block: nb})
	}
	if claimOnly {
		return Assigned{}, errNoUnclaimed
	}
	blocks, err := st.a.Store.PoolBlocks(ctx, p.Name)
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
	// Every block is claimed: borrow, fullest-free first, so the load
	// spreads and one node's block is not drained by all.
	slices.SortFunc(blocks, func(x, y *Block) int { return y.Free() - x.Free() })
	for _, b := range blocks {
		if b.Free() == 0 {
			continue
		}
		as, err := st.in(ctx, p, b.CIDR, inOpts{block: b})
		if errors.Is(err, ErrExhausted) || errors.Is(err, ErrNotFound) {
			continue
		}
		return as, err
	}
	return Assigned{}, fmt.Errorf("%w: every block of pool %q (%s) is full", ErrExhausted, p.Name, p.CIDR)
}

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

// in takes a slot in one block, retrying on write conflicts.
func (st *assignState) in(ctx context.Context, p Pool, cidr netip.Prefix, o inOpts) (Assigned, error) {
	b := o.block
	for try := 0; ; try++ {
		unlock := func() {}
		var err error
		if !st.locked {
			if unlock, err = st.a.lock(ctx); err != nil {
				return Assigned{}, err
			}
		}
		if b == nil {
			b, err = st.a.Store.GetBlock(ctx, cidr)
			if errors.Is(err, ErrNotFound) && o.create {
				b = NewBlock(p, cidr, "")
				if err = st.a.Store.CreateBlock(ctx, b); errors.Is(err, ErrExists) {
					unlock()
					b = nil
					continue
				}
			}
			if err != nil {
				unlock()
				return Assigned{}, err
			}
		}
		nb := b.Clone()
		addr, seq, changed, err := nb.Allocate(st.id, st.a.Node)
		if errors.Is(err, ErrExhausted) && b.Cached && o.deferCachedFull {
			unlock()
			return Assigned{}, errCachedFull
		}
		if (err != nil || !changed) && b.Cached {
			// Full or already held, by a copy that may be stale: read
			// the block itself before deciding.
			unlock()
			b = nil
			try--
			continue
		}
		if err != nil {
			unlock()
			return Assigned{}, err
		}
		as := Assigned{Pool: p.Name, PoolCIDR: p.CIDR, Block: cidr, Addr: addr, Seq: seq}
		if !changed {
			unlock()
			return as, nil
		}
		err = st.a.Store.UpdateBlock(ctx, nb)
		unlock()
		if err == nil {
			return as, nil
		}
		if !errors.Is(err, ErrConflict) {
			return Assigned{}, err
		}
		if o.patience > 0 && try+1 >= o.patience {
			return Assigned{}, errContended
		}
		if err := st.a.backoff(ctx, try); err != nil {
			return Assigned{}, fmt.Errorf("block %s: %w", cidr, err)
		}
		b = nil
	}
}

// addAffinity records that the node holds a block, retrying on conflicts.
func (st *assignState) addAffinity(ctx context.Context, pool string, cidr netip.Prefix) error {
	for try := 0; ; try++ {
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
		if err := st.a.backoff(ctx, try); err != nil {
			return err
		}
		aff, err := st.a.Store.GetAffinity(ctx, st.a.Node)
		if err != nil {
			return err
		}
		st.aff = aff
	}
}
