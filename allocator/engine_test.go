package allocator_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"testing"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/memstore"
)

func mkPool(t testing.TB, name, cidr string, blockSize int) allocator.Range {
	t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil || p != p.Masked() {
		t.Fatalf("pool CIDR %q: %v", cidr, err)
	}
	return allocator.Range{Pool: name, CIDR: p, BlockSize: blockSize}
}

func want(ranges ...allocator.Range) allocator.Want {
	return allocator.Want{Ranges: ranges}
}

// fillConcurrently runs `nodes` nodes with `perNode` workers each, all
// allocating from wants until the pools are exhausted. It returns every
// claim made and checks no error other than exhaustion occurred.
func fillConcurrently(t *testing.T, st allocator.Store, nodes, perNode int, wants ...allocator.Want) []*allocator.Claim {
	t.Helper()
	var (
		mu     sync.Mutex
		claims []*allocator.Claim
		wg     sync.WaitGroup
	)
	for n := 0; n < nodes; n++ {
		a := &allocator.Allocator{Store: st, Node: fmt.Sprintf("node-%02d", n), MaxConflicts: 10000}
		for w := 0; w < perNode; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					c, err := a.Assign(context.Background(), allocator.Request{
						ContainerID: fmt.Sprintf("%s-w%d-%d", a.Node, w, i), IfName: "eth0",
						Pod: allocator.PodRef{Namespace: "ns", Name: fmt.Sprintf("p-%s-%d-%d", a.Node, w, i)}, Wants: wants,
					})
					if errors.Is(err, allocator.ErrExhausted) {
						return
					}
					if err != nil {
						t.Errorf("assign: %v", err)
						return
					}
					mu.Lock()
					claims = append(claims, c)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return claims
}

// checkUnique fails on an address held twice or outside its pool.
func checkUnique(t *testing.T, claims []*allocator.Claim) map[netip.Addr]bool {
	t.Helper()
	seen := map[netip.Addr]bool{}
	for _, c := range claims {
		for _, as := range c.Addresses {
			if seen[as.Addr] {
				t.Fatalf("%s handed out twice", as.Addr)
			}
			if !as.PoolCIDR.Contains(as.Addr) || !as.Block.Contains(as.Addr) || allocator.Reserved(as.PoolCIDR, as.Addr) {
				t.Fatalf("%s outside pool %s / block %s or reserved", as.Addr, as.PoolCIDR, as.Block)
			}
			seen[as.Addr] = true
		}
	}
	return seen
}

// TestConcurrentFillIsExact: 16 nodes with 4 workers each fill a /22 of /26
// blocks (so nodes claim blocks, then borrow), ending with exactly the
// pool's capacity handed out, none twice; releasing everything empties
// every block.
func TestConcurrentFillIsExact(t *testing.T) {
	st := memstore.New()
	p := mkPool(t, "big", "198.18.0.0/22", 26)
	claims := fillConcurrently(t, st, 16, 4, want(p))
	seen := checkUnique(t, claims)
	if int64(len(seen)) != p.Capacity().Int64() {
		t.Fatalf("handed out %d addresses, capacity %s", len(seen), p.Capacity())
	}
	if !st.InUse("big") {
		t.Fatal("pool not marked in use before allocating")
	}
	blocks := st.Blocks()
	if len(blocks) != 16 {
		t.Fatalf("%d blocks, want 16", len(blocks))
	}
	var wg sync.WaitGroup
	for _, c := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &allocator.Allocator{Store: st, Node: c.Node, MaxConflicts: 10000}
			if err := a.Release(context.Background(), c.Network, c.ContainerID, c.IfName); err != nil {
				t.Errorf("release: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, b := range st.Blocks() {
		if len(b.Slots) != 0 {
			t.Fatalf("block %s still holds %d slots", b.CIDR, len(b.Slots))
		}
	}
	if n := len(st.Claims()); n != 0 {
		t.Fatalf("%d claims left", n)
	}
}

// TestSmallPoolSharedByEightNodes: a /29 is one shared block; eight nodes
// fill its six usable addresses exactly, then get ErrExhausted.
func TestSmallPoolSharedByEightNodes(t *testing.T) {
	st := memstore.New()
	p := mkPool(t, "fw", "198.51.100.8/29", 26)
	claims := fillConcurrently(t, st, 8, 2, want(p))
	if seen := checkUnique(t, claims); len(seen) != 6 {
		t.Fatalf("handed out %d addresses, want 6", len(seen))
	}
	a := &allocator.Allocator{Store: st, Node: "node-09"}
	_, err := a.Assign(context.Background(), allocator.Request{ContainerID: "late", IfName: "eth0", Wants: []allocator.Want{want(p)}})
	if !errors.Is(err, allocator.ErrExhausted) {
		t.Fatalf("7th allocation: %v, want ErrExhausted", err)
	}
}

// TestPoolsInOrder: the second named pool is used only once the first is
// full.
func TestPoolsInOrder(t *testing.T) {
	st := memstore.New()
	first := mkPool(t, "first", "198.51.100.0/30", 26)
	second := mkPool(t, "second", "203.0.113.0/24", 26)
	a := &allocator.Allocator{Store: st, Node: "n"}
	var pools []string
	for i := 0; i < 4; i++ {
		c, err := a.Assign(context.Background(), allocator.Request{ContainerID: fmt.Sprint(i), IfName: "eth0", Wants: []allocator.Want{want(first, second)}})
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, c.Addresses[0].Pool)
	}
	if fmt.Sprint(pools) != "[first first second second]" {
		t.Fatalf("pools used: %v", pools)
	}
}

// TestDualStackAllOrNothing: when IPv6 is exhausted, the IPv4 address taken
// first is released again.
func TestDualStackAllOrNothing(t *testing.T) {
	st := memstore.New()
	v4 := mkPool(t, "v4", "198.51.100.0/24", 26)
	v6 := mkPool(t, "v6", "2001:db8::/127", 122)
	a := &allocator.Allocator{Store: st, Node: "n"}
	for i := 0; i < 2; i++ {
		c, err := a.Assign(context.Background(), allocator.Request{ContainerID: fmt.Sprint(i), IfName: "eth0", Wants: []allocator.Want{want(v4), want(v6)}})
		if err != nil || len(c.Addresses) != 2 {
			t.Fatalf("dual-stack assign %d: %v %v", i, c, err)
		}
	}
	_, err := a.Assign(context.Background(), allocator.Request{ContainerID: "third", IfName: "eth0", Wants: []allocator.Want{want(v4), want(v6)}})
	if !errors.Is(err, allocator.ErrExhausted) {
		t.Fatalf("third: %v", err)
	}
	used := 0
	for _, b := range st.Blocks() {
		if b.Pool == "v4" {
			used += len(b.Slots)
		}
	}
	if used != 2 {
		t.Fatalf("v4 holds %d addresses after the failed dual-stack ADD, want 2", used)
	}
}

// crashingStore fails CreateClaim once, like a plugin killed after writing
// the block and before writing the claim.
type crashingStore struct {
	*memstore.Store
	failed bool
}

func (c *crashingStore) CreateClaim(ctx context.Context, cl *allocator.Claim) error {
	if !c.failed {
		c.failed = true
		return fmt.Errorf("killed: %w", allocator.ErrUnavailable)
	}
	return c.Store.CreateClaim(ctx, cl)
}

// TestIdempotence: ADD twice returns the same address; ADD retried after a
// crash before the claim was written reuses the slot; DEL twice is fine;
// DEL without a claim frees the orphaned slot.
func TestIdempotence(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	st := &crashingStore{Store: mem}
	p := mkPool(t, "p", "198.51.100.0/24", 26)
	a := &allocator.Allocator{Store: st, Node: "n"}
	req := allocator.Request{ContainerID: "ctr", IfName: "eth0", Wants: []allocator.Want{want(p)}}

	// Make rollback impossible to observe: the first attempt "crashes"
	// after the block write. Rollback runs (as in a real failure path), so
	// to model a SIGKILL we instead write the slot by hand.
	blk, _ := p.BlockAt(bigZero())
	b := allocator.NewBlock(p, blk, "n")
	orphan, _, _, _ := b.Allocate(allocator.ClaimID("", "ctr", "eth0"), "node-a", allocator.Cooldown{})
	if err := mem.CreateBlock(ctx, b); err != nil {
		t.Fatal(err)
	}
	aff, _ := mem.GetAffinity(ctx, "n")
	aff.Blocks["p"] = []netip.Prefix{blk}
	if err := mem.SaveAffinity(ctx, aff); err != nil {
		t.Fatal(err)
	}
	st.failed = true

	c1, err := a.Assign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Addresses[0].Addr != orphan {
		t.Fatalf("retry after crash got %s, want the orphaned %s", c1.Addresses[0].Addr, orphan)
	}
	c2, err := a.Assign(ctx, req)
	if err != nil || c2.Addresses[0].Addr != c1.Addresses[0].Addr {
		t.Fatalf("second ADD: %v %v", c2, err)
	}
	for i := 0; i < 2; i++ {
		if err := a.Release(ctx, "", "ctr", "eth0"); err != nil {
			t.Fatalf("DEL %d: %v", i, err)
		}
	}
	// Orphan without claim: DEL frees it.
	b2, _ := mem.GetBlock(ctx, blk)
	addr, _, _, _ := b2.Allocate(allocator.ClaimID("", "ctr2", "eth0"), "node-a", allocator.Cooldown{})
	if err := mem.UpdateBlock(ctx, b2); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "", "ctr2", "eth0"); err != nil {
		t.Fatal(err)
	}
	b3, _ := mem.GetBlock(ctx, blk)
	if _, _, held := b3.Find(allocator.ClaimID("", "ctr2", "eth0")); held || len(b3.Slots) != 0 {
		t.Fatalf("orphaned %s not freed by DEL: %v", addr, b3.Slots)
	}
}

// TestIdempotenceWithoutClaimRead: with SkipClaimRead, as the plugin
// asks, a repeated ADD still returns the attachment's address and leaves
// it holding exactly one slot, even when another of the node's blocks has
// room (where the repeat may take a slot before finding the claim).
func TestIdempotenceWithoutClaimRead(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	p := mkPool(t, "p", "198.51.100.0/24", 29)
	a := &allocator.Allocator{Store: mem, Node: "n"}
	wants := []allocator.Want{want(p)}
	for i := range 8 { // the first block full, the second with room
		if _, err := a.Assign(ctx, allocator.Request{ContainerID: fmt.Sprint("fill-", i), IfName: "eth0", Wants: wants}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Release(ctx, "", "fill-3", "eth0"); err != nil {
		t.Fatal(err)
	}
	req := allocator.Request{ContainerID: "ctr", IfName: "eth0", Wants: wants, SkipClaimRead: true}
	first, err := a.Assign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := allocator.ClaimID("", "ctr", "eth0")
	for i := range 10 {
		c, err := a.Assign(ctx, req)
		if err != nil || len(c.Addresses) != 1 || c.Addresses[0] != first.Addresses[0] {
			t.Fatalf("repeat %d: %+v, %v; want %+v", i, c, err, first.Addresses)
		}
		held := 0
		for _, b := range mem.Blocks() {
			if _, _, ok := b.Find(id); ok {
				held++
			}
		}
		if held != 1 {
			t.Fatalf("repeat %d: the attachment holds %d slots, want 1", i, held)
		}
	}
}

// TestFailedClaimWriteRollsBack: when the claim cannot be written the
// addresses are released, not leaked.
func TestFailedClaimWriteRollsBack(t *testing.T) {
	mem := memstore.New()
	st := &crashingStore{Store: mem}
	p := mkPool(t, "p", "198.51.100.0/29", 26)
	a := &allocator.Allocator{Store: st, Node: "n"}
	_, err := a.Assign(context.Background(), allocator.Request{ContainerID: "x", IfName: "eth0", Wants: []allocator.Want{want(p)}})
	if !errors.Is(err, allocator.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	for _, b := range mem.Blocks() {
		if len(b.Slots) != 0 {
			t.Fatalf("leaked %v", b.Slots)
		}
	}
}

func bigZero() *big.Int { return big.NewInt(0) }

// TestConcurrentSameAttachment: two ADDs of the same attachment racing (a
// runtime retrying while the first is still running) end with one claim and
// one held address, which both return.
func TestConcurrentSameAttachment(t *testing.T) {
	for round := 0; round < 50; round++ {
		st := memstore.New()
		p := mkPool(t, "p", "198.51.100.0/24", 26)
		var (
			wg  sync.WaitGroup
			got [2]netip.Addr
		)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := &allocator.Allocator{Store: st, Node: "n", MaxConflicts: 1000}
				c, err := a.Assign(context.Background(), allocator.Request{ContainerID: "same", IfName: "eth0", Wants: []allocator.Want{want(p)}})
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = c.Addresses[0].Addr
			}()
		}
		wg.Wait()
		held := 0
		for _, b := range st.Blocks() {
			held += len(b.Slots)
		}
		if got[0] != got[1] || held != 1 || len(st.Claims()) != 1 {
			t.Fatalf("round %d: got %v, %d slots held, %d claims", round, got, held, len(st.Claims()))
		}
	}
}

// TestSerializeHook: with a node lock, a node's concurrent ADDs never lose
// a write race on their block.
func TestSerializeHook(t *testing.T) {
	st := memstore.New()
	p := mkPool(t, "p", "198.18.0.0/24", 26)
	var mu sync.Mutex
	lock := func(context.Context) (func(), error) { mu.Lock(); return mu.Unlock, nil }
	// Claim the node's block first, so the workers below only allocate.
	a := &allocator.Allocator{Store: st, Node: "n", Serialize: lock}
	if _, err := a.Assign(context.Background(), allocator.Request{ContainerID: "first", IfName: "eth0", Wants: []allocator.Want{want(p)}}); err != nil {
		t.Fatal(err)
	}
	before := st.Conflicts
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Assign(context.Background(), allocator.Request{ContainerID: fmt.Sprint("c", i), IfName: "eth0", Wants: []allocator.Want{want(p)}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if st.Conflicts != before {
		t.Fatalf("%d write conflicts with the node lock held", st.Conflicts-before)
	}
}

// staleStore returns, on the first read of each block, a stale copy marked
// Cached, as the plugin's node-local block cache may.
type staleStore struct {
	*memstore.Store
	stale map[netip.Prefix]*allocator.Block
	read  map[netip.Prefix]bool
}

func (s *staleStore) GetBlock(ctx context.Context, cidr netip.Prefix) (*allocator.Block, error) {
	if b, ok := s.stale[cidr]; ok && !s.read[cidr] {
		s.read[cidr] = true
		c := b.Clone()
		c.Cached = true
		return c, nil
	}
	return s.Store.GetBlock(ctx, cidr)
}

// TestStaleCachedBlock: a stale cached copy never causes a wrong decision:
// a block that looked full, or an address that looked held by the claim
// but was freed since, is read again before anything is decided.
func TestStaleCachedBlock(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	p := mkPool(t, "p", "198.51.100.0/30", 26) // 2 usable addresses
	a := &allocator.Allocator{Store: mem, Node: "n"}
	req := func(ctr string) allocator.Request {
		return allocator.Request{ContainerID: ctr, IfName: "eth0", Wants: []allocator.Want{want(p)}}
	}
	c1, err := a.Assign(ctx, req("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Assign(ctx, req("two")); err != nil {
		t.Fatal(err)
	}
	full, _ := mem.GetBlock(ctx, p.CIDR)
	if err := a.Release(ctx, "", "one", "eth0"); err != nil {
		t.Fatal(err)
	}
	// The cache still shows the block full, with "one" holding c1's address.
	st := &staleStore{Store: mem, stale: map[netip.Prefix]*allocator.Block{p.CIDR: full}, read: map[netip.Prefix]bool{}}
	b := &allocator.Allocator{Store: st, Node: "n"}
	c3, err := b.Assign(ctx, req("three"))
	if err != nil {
		t.Fatalf("stale full copy: %v", err)
	}
	if c3.Addresses[0].Addr != c1.Addresses[0].Addr {
		t.Fatalf("got %s, want the freed %s", c3.Addresses[0].Addr, c1.Addresses[0].Addr)
	}
	// "one" again: the stale copy says it still holds its old address,
	// which now belongs to "three"; it must not be handed out twice.
	st.read = map[netip.Prefix]bool{}
	_, err = b.Assign(ctx, req("one"))
	if !errors.Is(err, allocator.ErrExhausted) {
		t.Fatalf("re-ADD of a released attachment on a stale copy: %v, want ErrExhausted", err)
	}
}

// cacheStore serves each block's first read in an Assign from an exact
// cached copy, as the plugin's node-local cache does when the node lock
// queues its processes, and counts the reads that reach the store.
type cacheStore struct {
	*memstore.Store
	read       map[netip.Prefix]bool
	storeReads int
	// aff, when set, is served Cached on the first affinity read.
	aff *allocator.Affinity
	// cachedReads counts reads served from the "cache".
	cachedReads int
}

// hintStore is a cacheStore that also says which blocks look full, as the
// plugin's cache does with a marker file per full block.
type hintStore struct{ *cacheStore }

func (s hintStore) LooksFull(cidr netip.Prefix) bool {
	b, err := s.Store.GetBlock(context.Background(), cidr)
	return err == nil && b.Free() == 0
}

func (s *cacheStore) GetAffinity(ctx context.Context, node string) (*allocator.Affinity, error) {
	if a := s.aff; a != nil {
		s.aff = nil
		a.Cached = true
		return a, nil
	}
	return s.Store.GetAffinity(ctx, node)
}

func (s *cacheStore) GetBlock(ctx context.Context, cidr netip.Prefix) (*allocator.Block, error) {
	b, err := s.Store.GetBlock(ctx, cidr)
	if err == nil && !s.read[cidr] {
		s.read[cidr] = true
		s.cachedReads++
		b.Cached = true
		return b, nil
	}
	s.storeReads++
	return b, err
}

// TestFullBlocksCostNoReads: a node holding many full blocks allocates from
// the one with room without reading the full ones from the store, so an
// ADD's cost does not grow with the addresses its node holds; once every
// block is full, each is confirmed on a fresh read before a new one is
// claimed.
func TestFullBlocksCostNoReads(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New()
	p := mkPool(t, "p", "198.18.0.0/24", 29) // blocks of 8 addresses
	a := &allocator.Allocator{Store: mem, Node: "n"}
	wants := []allocator.Want{want(p)}
	assign := func(a *allocator.Allocator, ctr string) *allocator.Claim {
		t.Helper()
		c, err := a.Assign(ctx, allocator.Request{ContainerID: ctr, IfName: "eth0", Wants: wants})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range 8*8 - 2 { // 8 blocks; the first loses the pool's network address
		assign(a, fmt.Sprintf("fill-%d", i))
	}
	aff, _ := mem.GetAffinity(ctx, "n")
	if n := len(aff.Blocks["p"]); n != 8 {
		t.Fatalf("node holds %d blocks, want 8", n)
	}
	// One address left in the last block: each of 20 tries (random start
	// among the 8 blocks) must find it without a store read.
	last := aff.Blocks["p"][7]
	for i := range 20 {
		st := &cacheStore{Store: mem, read: map[netip.Prefix]bool{}}
		c := assign(&allocator.Allocator{Store: st, Node: "n"}, fmt.Sprintf("probe-%d", i))
		if st.storeReads != 0 {
			t.Fatalf("try %d: %d block reads reached the store, want 0", i, st.storeReads)
		}
		if c.Addresses[0].Block != last {
			t.Fatalf("got %s in %s, want the free slot in %s", c.Addresses[0].Addr, c.Addresses[0].Block, last)
		}
		if err := a.Release(ctx, "", fmt.Sprintf("probe-%d", i), "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	// With the full-block hint, the full blocks are not even read from
	// the cache: one read, of the block with room.
	for i := range 5 {
		st := &cacheStore{Store: mem, read: map[netip.Prefix]bool{}}
		c := assign(&allocator.Allocator{Store: hintStore{st}, Node: "n"}, fmt.Sprintf("hinted-%d", i))
		if st.storeReads != 0 || st.cachedReads != 1 || c.Addresses[0].Block != last {
			t.Fatalf("hinted try %d: %d store and %d cached reads, address %s; want 0, 1 and one in %s", i, st.storeReads, st.cachedReads, c.Addresses[0].Addr, last)
		}
		if err := a.Release(ctx, "", fmt.Sprintf("hinted-%d", i), "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	// Every block full: all 8 are read again before a ninth is claimed.
	assign(a, "fill-last")
	stale, _ := mem.GetAffinity(ctx, "n")
	st := &cacheStore{Store: mem, read: map[netip.Prefix]bool{}}
	c := assign(&allocator.Allocator{Store: st, Node: "n"}, "next")
	if st.storeReads < 8 {
		t.Fatalf("%d store reads before claiming a new block, want every full block confirmed (8)", st.storeReads)
	}
	if aff, _ := mem.GetAffinity(ctx, "n"); len(aff.Blocks["p"]) != 9 || !aff.Has("p", c.Addresses[0].Block) {
		t.Fatalf("after the node's blocks filled: %v, address %s", aff.Blocks["p"], c.Addresses[0].Addr)
	}
	// Another process, whose cached affinity predates the ninth block,
	// finds it by reading the affinity again, not by confirming the 8
	// full blocks.
	st = &cacheStore{Store: mem, read: map[netip.Prefix]bool{}, aff: stale}
	c2 := assign(&allocator.Allocator{Store: st, Node: "n"}, "after")
	if st.storeReads != 0 || c2.Addresses[0].Block != c.Addresses[0].Block {
		t.Fatalf("stale cached affinity: %d block reads reached the store, address %s; want 0 and one in %s", st.storeReads, c2.Addresses[0].Addr, c.Addresses[0].Block)
	}
}
