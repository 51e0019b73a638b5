package ipam

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// blockCache is a Store that remembers, in a node-local directory, each
// block as this node last wrote it. The node lock queues the node's plugin
// processes, so the next one finds the block exactly as the API server
// holds it and writes without reading it first: one round trip less per
// ADD. Only a process's first read of a block comes from the cache; after
// a conflict (another node wrote the block, or the cache was stale) the
// engine reads again and that read goes to the API server. The cache is
// only ever a guess: every write is still guarded by resourceVersion.
type blockCache struct {
	kubestore.Store
	dir  string
	read map[netip.Prefix]bool // blocks this process has read once
}

func newBlockCache(st kubestore.Store, dir string) *blockCache {
	return &blockCache{Store: st, dir: dir, read: map[netip.Prefix]bool{}}
}

func (c *blockCache) path(cidr netip.Prefix) string {
	return filepath.Join(c.dir, allocator.BlockName(cidr)+".json")
}

// GetBlock returns the cached copy on the first read of a block, else the
// API server's.
func (c *blockCache) GetBlock(ctx context.Context, cidr netip.Prefix) (*allocator.Block, error) {
	if !c.read[cidr] {
		c.read[cidr] = true
		if b := c.load(cidr); b != nil {
			return b, nil
		}
	}
	b, err := c.Store.GetBlock(ctx, cidr)
	if err == nil {
		c.save(b)
	}
	return b, err
}

// CreateBlock implements allocator.Store and remembers the block.
func (c *blockCache) CreateBlock(ctx context.Context, b *allocator.Block) error {
	err := c.Store.CreateBlock(ctx, b)
	if err == nil {
		c.read[b.CIDR] = true
		c.save(b)
	}
	return err
}

// UpdateBlock implements allocator.Store and remembers the block.
func (c *blockCache) UpdateBlock(ctx context.Context, b *allocator.Block) error {
	err := c.Store.UpdateBlock(ctx, b)
	if err == nil {
		c.save(b)
	}
	return err
}

func (c *blockCache) load(cidr netip.Prefix) *allocator.Block {
	raw, err := os.ReadFile(c.path(cidr))
	if err != nil {
		return nil
	}
	var o v1alpha1.IPAMBlock
	if json.Unmarshal(raw, &o) != nil || o.ResourceVersion == "" {
		return nil
	}
	b, err := kubestore.BlockFromAPI(&o)
	if err != nil || b.CIDR != cidr {
		return nil
	}
	b.Cached = true
	return b
}

// save writes the block atomically (temporary file, then rename), so a
// process killed half-way leaves the old copy or the new, never a torn one.
func (c *blockCache) save(b *allocator.Block) {
	raw, err := json.Marshal(kubestore.BlockToAPI(b))
	if err != nil || os.MkdirAll(c.dir, 0o700) != nil {
		return
	}
	f, err := os.CreateTemp(c.dir, ".block-*")
	if err != nil {
		return
	}
	_, werr := f.Write(raw)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), c.path(b.CIDR)) != nil {
		_ = os.Remove(f.Name())
	}
}
