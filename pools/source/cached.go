package source

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/policy"
)

// Informer is the part of an informer Cached needs: controller-runtime's
// cache.Informer satisfies it.
type Informer interface {
	AddEventHandler(handler toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error)
}

// Cached serves the same index as the Source it wraps (Native or Calico),
// but builds it only after an IPPool event instead of on every request: listing the cache deep-copies
// every pool and converting them parses every CIDR and selector, which was
// most of a pod validation's own time with a few dozen pools. Pools change
// rarely; pods are admitted all the time.
type Cached struct {
	lister Source
	// synced reports whether the handler has seen the informer's initial
	// list; until then every Snapshot lists, exactly as Native does.
	synced func() bool
	// changes counts IPPool events. An index built after reading changes
	// is current until changes moves on.
	changes atomic.Uint64
	built   atomic.Pointer[builtIndex]
	// mu lets one request rebuild while the others wait for its result
	// rather than all rebuilding at once after a change.
	mu sync.Mutex
}

type builtIndex struct {
	changes uint64
	index   *policy.Index
}

// NewCached serves the IPPools of reader, rebuilding its index on events
// of informer, which must be the informer behind reader's IPPools.
func NewCached(informer Informer, reader client.Reader) (*Cached, error) {
	return Wrap(informer, Native{Reader: reader})
}

// Wrap serves lister's index, rebuilding it on events of informer, which
// must be the informer behind lister's pools.
func Wrap(informer Informer, lister Source) (*Cached, error) {
	c := &Cached{lister: lister}
	bump := func() { c.changes.Add(1) }
	reg, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { bump() },
		UpdateFunc: func(any, any) { bump() },
		DeleteFunc: func(any) { bump() },
	})
	if err != nil {
		return nil, fmt.Errorf("watching IPPools: %w", err)
	}
	c.synced = reg.HasSynced
	return c, nil
}

// Snapshot returns the current index. The informer updates its store
// before it calls handlers, so an index listed after an event's count was
// read holds that event's change.
func (c *Cached) Snapshot(ctx context.Context) (*policy.Index, error) {
	if !c.synced() {
		return c.lister.Snapshot(ctx)
	}
	if b := c.built.Load(); b != nil && b.changes == c.changes.Load() {
		return b.index, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.changes.Load()
	if b := c.built.Load(); b != nil && b.changes == n {
		return b.index, nil
	}
	ix, err := c.lister.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	c.built.Store(&builtIndex{changes: n, index: ix})
	return ix, nil
}
