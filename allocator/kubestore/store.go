package kubestore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools"
)

// Store implements allocator.Store on the Kubernetes API.
type Store struct {
	// Client reaches the API server directly (no cache): every read but
	// the pools' feeds a conditional write.
	Client *Client
	// History has each new claim carry the history finalizer
	// (v1alpha1.FinalizerHistory), so its release is recorded before it
	// goes: the allocator's recorder must run (the chart's
	// allocator.history.enabled), or released claims linger.
	History bool
}

var _ allocator.Store = Store{}

// GetClaim implements allocator.Store.
func (s Store) GetClaim(ctx context.Context, id string) (*allocator.Claim, error) {
	var o v1alpha1.IPAMClaim
	if err := s.Client.Get(ctx, Claims, id, ReadOpts{}, &o); err != nil {
		return nil, wrap(err, "IPAMClaim", id)
	}
	return ClaimFromAPI(&o)
}

// CreateClaim implements allocator.Store.
func (s Store) CreateClaim(ctx context.Context, c *allocator.Claim) error {
	o := ClaimToAPI(c)
	o.ResourceVersion = ""
	if s.History {
		o.Finalizers = []string{v1alpha1.FinalizerHistory}
	}
	if err := s.Client.Create(ctx, Claims, o); err != nil {
		return wrap(err, "IPAMClaim", c.ID)
	}
	c.Version = o.ResourceVersion
	return nil
}

// DeleteClaim implements allocator.Store.
func (s Store) DeleteClaim(ctx context.Context, c *allocator.Claim) error {
	return wrap(s.Client.Delete(ctx, Claims, c.ID, c.Version), "IPAMClaim", c.ID)
}

// GetBlock implements allocator.Store.
func (s Store) GetBlock(ctx context.Context, cidr netip.Prefix) (*allocator.Block, error) {
	var o v1alpha1.IPAMBlock
	name := allocator.BlockName(cidr)
	if err := s.Client.Get(ctx, Blocks, name, ReadOpts{}, &o); err != nil {
		return nil, wrap(err, "IPAMBlock", name)
	}
	return BlockFromAPI(&o)
}

// CreateBlock implements allocator.Store.
func (s Store) CreateBlock(ctx context.Context, b *allocator.Block) error {
	o := BlockToAPI(b)
	o.ResourceVersion = ""
	if err := s.Client.Create(ctx, Blocks, o); err != nil {
		return wrap(err, "IPAMBlock", o.Name)
	}
	b.Version = o.ResourceVersion
	return nil
}

// UpdateBlock implements allocator.Store. The object carries the
// resourceVersion read, so the API server refuses a stale write.
func (s Store) UpdateBlock(ctx context.Context, b *allocator.Block) error {
	if b.Version == "" {
		return fmt.Errorf("IPAMBlock %s: update without a resourceVersion", b.CIDR)
	}
	o := BlockToAPI(b)
	if err := s.Client.Update(ctx, Blocks, o.Name, o); err != nil {
		return wrap(err, "IPAMBlock", o.Name)
	}
	b.Version = o.ResourceVersion
	return nil
}

// DeleteBlock deletes a block if its version still matches (used by the
// garbage collector for empty blocks).
func (s Store) DeleteBlock(ctx context.Context, b *allocator.Block) error {
	name := allocator.BlockName(b.CIDR)
	return wrap(s.Client.Delete(ctx, Blocks, name, b.Version), "IPAMBlock", name)
}

// ClaimedBlocks implements allocator.Store with a metadata-only LIST of
// the pool's blocks from the API server's watch cache: a few hundred bytes
// a block instead of its slots, so claiming a block costs the same in a
// cluster of any size. A block without the annotations (written by an
// older version) makes it fall back to the full list.
func (s Store) ClaimedBlocks(ctx context.Context, pool string) (map[netip.Prefix]string, error) {
	var list metav1.PartialObjectMetadataList
	if err := s.Client.List(ctx, Blocks, ReadOpts{FieldSelector: "spec.pool=" + pool, Cached: true, MetadataOnly: true}, &list); err != nil {
		return nil, wrap(err, "IPAMBlocks of pool", pool)
	}
	out := make(map[netip.Prefix]string, len(list.Items))
	for _, o := range list.Items {
		cidr, err := netip.ParsePrefix(o.Annotations[v1alpha1.AnnotationBlockCIDR])
		if err != nil {
			return s.claimedFromFull(ctx, pool)
		}
		out[cidr] = o.Annotations[v1alpha1.AnnotationBlockNode]
	}
	return out, nil
}

func (s Store) claimedFromFull(ctx context.Context, pool string) (map[netip.Prefix]string, error) {
	blocks, err := s.PoolBlocks(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Prefix]string, len(blocks))
	for _, b := range blocks {
		out[b.CIDR] = b.Node
	}
	return out, nil
}

// PoolBlocks implements allocator.Store with a LIST selected on spec.pool:
// the blocks of one pool only.
func (s Store) PoolBlocks(ctx context.Context, pool string) ([]*allocator.Block, error) {
	var list v1alpha1.IPAMBlockList
	if err := s.Client.List(ctx, Blocks, ReadOpts{FieldSelector: "spec.pool=" + pool}, &list); err != nil {
		return nil, wrap(err, "IPAMBlocks of pool", pool)
	}
	out := make([]*allocator.Block, 0, len(list.Items))
	for i := range list.Items {
		b, err := BlockFromAPI(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// GetAffinity implements allocator.Store.
func (s Store) GetAffinity(ctx context.Context, node string) (*allocator.Affinity, error) {
	var o v1alpha1.IPAMAffinity
	err := s.Client.Get(ctx, Affinities, node, ReadOpts{}, &o)
	if apierrors.IsNotFound(err) {
		return &allocator.Affinity{Node: node, Blocks: map[string][]netip.Prefix{}}, nil
	}
	if err != nil {
		return nil, wrap(err, "IPAMAffinity", node)
	}
	return AffinityFromAPI(&o)
}

// SaveAffinity implements allocator.Store.
func (s Store) SaveAffinity(ctx context.Context, a *allocator.Affinity) error {
	o := AffinityToAPI(a)
	// Keep the object's order stable, so it reads well and diffs cleanly.
	slices.SortFunc(o.Spec.Blocks, func(x, y v1alpha1.AffineBlock) int {
		if x.Pool != y.Pool {
			if x.Pool < y.Pool {
				return -1
			}
			return 1
		}
		return comparePrefix(x.CIDR, y.CIDR)
	})
	var err error
	if a.Version == "" {
		err = s.Client.Create(ctx, Affinities, o)
	} else {
		err = s.Client.Update(ctx, Affinities, o.Name, o)
	}
	if err != nil {
		return wrap(err, "IPAMAffinity", a.Node)
	}
	a.Version = o.ResourceVersion
	return nil
}

// DeleteAffinity deletes a node's affinity if its version still matches.
func (s Store) DeleteAffinity(ctx context.Context, a *allocator.Affinity) error {
	return wrap(s.Client.Delete(ctx, Affinities, a.Node, a.Version), "IPAMAffinity", a.Node)
}

// MarkPoolInUse implements allocator.Store: it adds the allocations
// finalizer to the IPPool, guarded by its resourceVersion.
func (s Store) MarkPoolInUse(ctx context.Context, pool string) error {
	for try := 0; try < 10; try++ {
		var p apiv1alpha1.IPPool
		if err := s.Client.Get(ctx, IPPools, pool, ReadOpts{}, &p); err != nil {
			return wrap(err, "IPPool", pool)
		}
		if p.DeletionTimestamp != nil {
			return fmt.Errorf("%w: pool %q is being deleted and hands out no new addresses", policy.ErrDisabledPool, pool)
		}
		if slices.Contains(p.Finalizers, apiv1alpha1.FinalizerAllocations) {
			return nil
		}
		p.Finalizers = append(p.Finalizers, apiv1alpha1.FinalizerAllocations)
		err := s.Client.Update(ctx, IPPools, pool, &p)
		if err == nil || !apierrors.IsConflict(err) {
			return wrap(err, "IPPool", pool)
		}
	}
	return fmt.Errorf("%w: IPPool %s: finalizer", allocator.ErrBusy, pool)
}

// Pools reads every IPPool. With cached, the API server answers from its
// watch cache (cheaper, possibly a moment behind; callers re-read without
// it before refusing a pod).
func (s Store) Pools(ctx context.Context, cached bool) (PoolSet, error) {
	var list apiv1alpha1.IPPoolList
	if err := s.Client.List(ctx, IPPools, ReadOpts{Cached: cached}, &list); err != nil {
		return PoolSet{}, wrap(err, "IPPools", "")
	}
	return FromIPPools(list.Items), nil
}

// PoolSet is the cluster's IPPools as a node reads them, each seen two
// ways under its one name: as the policy's pool (which pods may use it:
// policy.ChoosePools decides on the Index) and as the allocator's range
// (how it is cut into blocks: Wants turns the choice into the allocator's
// request).
type PoolSet struct {
	Index  *policy.Index
	Ranges map[string]allocator.Range
}

// FromIPPools converts IPPools. An invalid pool is kept, marked Invalid,
// so that a pod naming it is refused for that reason, not as unknown; it
// has no range.
func FromIPPools(items []apiv1alpha1.IPPool) PoolSet {
	ps := make([]policy.Pool, 0, len(items))
	ranges := make(map[string]allocator.Range, len(items))
	for i := range items {
		p, err := pools.FromIPPool(&items[i])
		ps = append(ps, p)
		if err != nil {
			continue
		}
		ranges[p.Name] = RangeOf(p, items[i].Spec.BlockSize, slices.Contains(items[i].Finalizers, apiv1alpha1.FinalizerAllocations))
	}
	return PoolSet{Index: policy.NewIndex(ps), Ranges: ranges}
}

// RangeOf is a pool's range as the allocator cuts it: blocks of the
// IPPool's blockSize, or of its family's default when it names none.
func RangeOf(p policy.Pool, blockSize int32, inUse bool) allocator.Range {
	bits := int(blockSize)
	if bits == 0 {
		bits = policy.DefaultBlockSize(p.Family())
	}
	return allocator.Range{Pool: p.Name, CIDR: p.CIDR, BlockSize: bits, InUse: inUse}
}

// Wants turns the pools policy chose for a pod into the allocator's
// request, one Want per family, each pool as its range.
func (s PoolSet) Wants(choices []policy.Choice) []allocator.Want {
	out := make([]allocator.Want, 0, len(choices))
	for _, c := range choices {
		w := allocator.Want{Ranges: make([]allocator.Range, 0, len(c.Pools))}
		for _, p := range c.Pools {
			if r, ok := s.Ranges[p.Name]; ok {
				w.Ranges = append(w.Ranges, r)
			}
		}
		out = append(out, w)
	}
	return out
}

// wrap maps API errors to the allocator's sentinels.
func wrap(err error, kind, name string) error {
	if err == nil {
		return nil
	}
	what := kind
	if name != "" {
		what += " " + name
	}
	var netErr net.Error
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w", what, allocator.ErrNotFound)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s: %w", what, allocator.ErrExists)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%s: %w", what, allocator.ErrConflict)
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w: %w", what, allocator.ErrRefused, err)
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err),
		errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded), isConnErr(err):
		return fmt.Errorf("%s: %w: %w", what, allocator.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func isConnErr(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

func comparePrefix(a, b string) int {
	pa, e1 := netip.ParsePrefix(a)
	pb, e2 := netip.ParsePrefix(b)
	if e1 != nil || e2 != nil {
		if a < b {
			return -1
		}
		return 1
	}
	if c := pa.Addr().Compare(pb.Addr()); c != 0 {
		return c
	}
	return pa.Bits() - pb.Bits()
}
