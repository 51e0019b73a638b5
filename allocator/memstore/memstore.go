// Package memstore is an in-memory allocator.Store with the same
// optimistic-concurrency contract as the Kubernetes store: the allocation
// engine's property tests run many goroutines against it.
package memstore

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"poolguard.dev/poolguard/allocator"
)

// Store keeps state in maps under one lock. Versions are a global counter,
// as resourceVersions are.
type Store struct {
	mu       sync.Mutex
	version  int
	claims   map[string]*allocator.Claim
	blocks   map[netip.Prefix]*allocator.Block
	affinity map[string]*allocator.Affinity
	inUse    map[string]bool
	// Writes counts successful writes, Conflicts failed conditional ones.
	Writes, Conflicts int
}

// New returns an empty store.
func New() *Store {
	return &Store{
		claims:   map[string]*allocator.Claim{},
		blocks:   map[netip.Prefix]*allocator.Block{},
		affinity: map[string]*allocator.Affinity{},
		inUse:    map[string]bool{},
	}
}

var _ allocator.Store = (*Store)(nil)

func (s *Store) next() string { s.version++; return strconv.Itoa(s.version) }

// GetClaim implements allocator.Store.
func (s *Store) GetClaim(_ context.Context, id string) (*allocator.Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.claims[id]
	if !ok {
		return nil, fmt.Errorf("claim %s: %w", id, allocator.ErrNotFound)
	}
	cc := *c
	cc.Addresses = append([]allocator.Assigned(nil), c.Addresses...)
	return &cc, nil
}

// CreateClaim implements allocator.Store.
func (s *Store) CreateClaim(_ context.Context, c *allocator.Claim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.claims[c.ID]; ok {
		return fmt.Errorf("claim %s: %w", c.ID, allocator.ErrExists)
	}
	c.Version = s.next()
	cc := *c
	cc.Addresses = append([]allocator.Assigned(nil), c.Addresses...)
	s.claims[c.ID] = &cc
	s.Writes++
	return nil
}

// DeleteClaim implements allocator.Store.
func (s *Store) DeleteClaim(_ context.Context, c *allocator.Claim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.claims[c.ID]
	if !ok {
		return fmt.Errorf("claim %s: %w", c.ID, allocator.ErrNotFound)
	}
	if cur.Version != c.Version {
		s.Conflicts++
		return fmt.Errorf("claim %s: %w", c.ID, allocator.ErrConflict)
	}
	delete(s.claims, c.ID)
	s.Writes++
	return nil
}

// Claims returns a copy of every claim.
func (s *Store) Claims() []allocator.Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]allocator.Claim, 0, len(s.claims))
	for _, c := range s.claims {
		out = append(out, *c)
	}
	return out
}

// GetBlock implements allocator.Store.
func (s *Store) GetBlock(_ context.Context, cidr netip.Prefix) (*allocator.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[cidr]
	if !ok {
		return nil, fmt.Errorf("block %s: %w", cidr, allocator.ErrNotFound)
	}
	return b.Clone(), nil
}

// CreateBlock implements allocator.Store.
func (s *Store) CreateBlock(_ context.Context, b *allocator.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blocks[b.CIDR]; ok {
		return fmt.Errorf("block %s: %w", b.CIDR, allocator.ErrExists)
	}
	b.Version = s.next()
	s.blocks[b.CIDR] = stored(b)
	s.Writes++
	return nil
}

// stored is the copy the store keeps: what it hands out is never a cached
// copy, whatever the writer's block was read from.
func stored(b *allocator.Block) *allocator.Block {
	c := b.Clone()
	c.Cached = false
	return c
}

// UpdateBlock implements allocator.Store.
func (s *Store) UpdateBlock(_ context.Context, b *allocator.Block) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.blocks[b.CIDR]
	if !ok {
		return fmt.Errorf("block %s: %w", b.CIDR, allocator.ErrNotFound)
	}
	if cur.Version != b.Version {
		s.Conflicts++
		return fmt.Errorf("block %s: %w", b.CIDR, allocator.ErrConflict)
	}
	b.Version = s.next()
	s.blocks[b.CIDR] = stored(b)
	s.Writes++
	return nil
}

// ClaimedBlocks implements allocator.Store.
func (s *Store) ClaimedBlocks(_ context.Context, pool string) (map[netip.Prefix]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[netip.Prefix]string{}
	for _, b := range s.blocks {
		if b.Pool == pool {
			out[b.CIDR] = b.Node
		}
	}
	return out, nil
}

// PoolBlocks implements allocator.Store.
func (s *Store) PoolBlocks(_ context.Context, pool string) ([]*allocator.Block, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*allocator.Block
	for _, b := range s.blocks {
		if b.Pool == pool {
			out = append(out, b.Clone())
		}
	}
	return out, nil
}

// Blocks returns a copy of every block.
func (s *Store) Blocks() []*allocator.Block {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*allocator.Block, 0, len(s.blocks))
	for _, b := range s.blocks {
		out = append(out, b.Clone())
	}
	return out
}

// GetAffinity implements allocator.Store.
func (s *Store) GetAffinity(_ context.Context, node string) (*allocator.Affinity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.affinity[node]
	if !ok {
		return &allocator.Affinity{Node: node, Blocks: map[string][]netip.Prefix{}}, nil
	}
	return a.Clone(), nil
}

// SaveAffinity implements allocator.Store.
func (s *Store) SaveAffinity(_ context.Context, a *allocator.Affinity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.affinity[a.Node]
	switch {
	case a.Version == "" && ok:
		s.Conflicts++
		return fmt.Errorf("affinity %s: %w", a.Node, allocator.ErrExists)
	case a.Version != "" && (!ok || cur.Version != a.Version):
		s.Conflicts++
		return fmt.Errorf("affinity %s: %w", a.Node, allocator.ErrConflict)
	}
	a.Version = s.next()
	s.affinity[a.Node] = a.Clone()
	s.Writes++
	return nil
}

// MarkPoolInUse implements allocator.Store.
func (s *Store) MarkPoolInUse(_ context.Context, pool string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse[pool] = true
	return nil
}

// InUse reports whether MarkPoolInUse was called for the pool.
func (s *Store) InUse(pool string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse[pool]
}
