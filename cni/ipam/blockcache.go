package ipam

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// blockCache is a Store that remembers, in a node-local directory, each
// block as this node last wrote it, and the node's affinity. The node lock
// queues the node's plugin processes, so the next one finds the block
// exactly as the API server holds it and writes without reading it first:
// one round trip less per ADD, and one more for the affinity. Only a process's first read of a block comes from the cache; after
// a conflict (another node wrote the block, or the cache was stale) the
// engine reads again and that read goes to the API server. The cache is
// only ever a guess: every write is still guarded by resourceVersion.
type blockCache struct {
	kubestore.Store
	dir     string
	read    map[netip.Prefix]bool // blocks this process has read once
	readAff bool                  // the affinity has been read once
	// cooldown is the allocator's: a block whose free addresses are all
	// cooling down is marked full too.
	cooldown time.Duration
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

// GetAffinity returns the cached copy on the first read, else the API
// server's. The node's affinity changes only when this node claims a
// block, so the copy is almost always exact; when it is not, the write
// that depends on it fails and the engine reads again.
func (c *blockCache) GetAffinity(ctx context.Context, node string) (*allocator.Affinity, error) {
	if !c.readAff {
		c.readAff = true
		var o v1alpha1.IPAMAffinity
		if loadJSON(c.affinityPath(), &o) && o.Name == node {
			if a, err := kubestore.AffinityFromAPI(&o); err == nil {
				a.Cached = true
				return a, nil
			}
		}
	}
	a, err := c.Store.GetAffinity(ctx, node)
	if err == nil && a.Version != "" {
		c.saveJSON(c.affinityPath(), kubestore.AffinityToAPI(a))
	}
	return a, err
}

// SaveAffinity implements allocator.Store and remembers the affinity.
func (c *blockCache) SaveAffinity(ctx context.Context, a *allocator.Affinity) error {
	err := c.Store.SaveAffinity(ctx, a)
	if err == nil {
		c.saveJSON(c.affinityPath(), kubestore.AffinityToAPI(a))
	}
	return err
}

func (c *blockCache) affinityPath() string { return filepath.Join(c.dir, "affinity.json") }

// loadJSON decodes a cached object; false when there is none usable.
func loadJSON(path string, o interface{ GetResourceVersion() string }) bool {
	raw, err := os.ReadFile(path)
	return err == nil && json.Unmarshal(raw, o) == nil && o.GetResourceVersion() != ""
}

func (c *blockCache) load(cidr netip.Prefix) *allocator.Block {
	var o v1alpha1.IPAMBlock
	if !loadJSON(c.path(cidr), &o) {
		return nil
	}
	b, err := kubestore.BlockFromAPI(&o)
	if err != nil || b.CIDR != cidr {
		return nil
	}
	b.Cached = true
	return b
}

func (c *blockCache) save(b *allocator.Block) {
	c.saveJSON(c.path(b.CIDR), kubestore.BlockToAPI(b))
	if b.Available(allocator.Cooldown{Now: time.Now(), Period: c.cooldown}) == 0 {
		if f, err := os.Create(c.fullPath(b.CIDR)); err == nil {
			f.Close()
		}
	} else {
		_ = os.Remove(c.fullPath(b.CIDR))
	}
}

// LooksFull implements allocator.FullHinter: the block was full (or had
// only addresses cooling down) when this node last wrote or read it. One
// stat, where reading the cached copy would decode the whole block.
func (c *blockCache) LooksFull(cidr netip.Prefix) bool {
	_, err := os.Stat(c.fullPath(cidr))
	return err == nil
}

func (c *blockCache) fullPath(cidr netip.Prefix) string {
	return filepath.Join(c.dir, allocator.BlockName(cidr)+".full")
}

// saveJSON writes an object atomically (temporary file, then rename), so a
// process killed half-way leaves the old copy or the new, never a torn one.
// Not renameio: a cache needs no fsync (it lives on tmpfs and is only a
// guess), and a flush inside the node lock would delay every ADD behind
// it. Failing to cache only costs a read later.
func (c *blockCache) saveJSON(path string, o any) {
	raw, err := json.Marshal(o)
	if err != nil || os.MkdirAll(c.dir, 0o700) != nil {
		return
	}
	f, err := os.CreateTemp(c.dir, ".cache-*")
	if err != nil {
		return
	}
	_, werr := f.Write(raw)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), path) != nil {
		_ = os.Remove(f.Name())
	}
}
