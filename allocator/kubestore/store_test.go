package kubestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/test/harness"
)

var env *harness.Env

func TestMain(m *testing.M) {
	var err error
	env, err = harness.Start(harness.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	os.Exit(code)
}

func newStore(t *testing.T) (kubestore.Store, client.Client) {
	t.Helper()
	c, err := harness.Client(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	lean, err := kubestore.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return kubestore.Store{Client: lean}, c
}

func createPool(t *testing.T, c client.Client, name, cidr string, blockSize int32) allocator.Range {
	t.Helper()
	p := &apiv1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: apiv1alpha1.IPPoolSpec{CIDR: cidr, BlockSize: blockSize}}
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return kubestore.FromIPPools([]apiv1alpha1.IPPool{*p}).Ranges[name]
}

// TestKubeStoreConcurrentFill runs the allocation engine from 16 simulated
// nodes (4 goroutines each) against the real API server until a /24 of /28
// blocks is exhausted: exactly its capacity is handed out, none twice, and
// the pool got its finalizer before the first allocation.
func TestKubeStoreConcurrentFill(t *testing.T) {
	st, c := newStore(t)
	ctx := context.Background()
	p := createPool(t, c, "fill", "198.18.10.0/24", 28)
	var (
		mu   sync.Mutex
		seen = map[netip.Addr]string{}
		wg   sync.WaitGroup
	)
	for n := 0; n < 16; n++ {
		a := &allocator.Allocator{Store: st, Node: fmt.Sprintf("fill-node-%02d", n), MaxConflicts: 1000}
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					cl, err := a.Assign(ctx, allocator.Request{ContainerID: fmt.Sprintf("%s-%d-%d", a.Node, w, i), IfName: "eth0",
						Pod: allocator.PodRef{Namespace: "ns", Name: "p"}, Wants: []allocator.Want{{Ranges: []allocator.Range{p}}}})
					if errors.Is(err, allocator.ErrExhausted) {
						return
					}
					if err != nil {
						t.Errorf("assign: %v", err)
						return
					}
					mu.Lock()
					addr := cl.Addresses[0].Addr
					if prev, dup := seen[addr]; dup {
						t.Errorf("%s handed to %s and %s", addr, prev, cl.ID)
					}
					seen[addr] = cl.ID
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(seen) != 254 {
		t.Fatalf("handed out %d addresses, want 254", len(seen))
	}
	var blocks v1alpha1.IPAMBlockList
	if err := c.List(ctx, &blocks, client.MatchingFields{"spec.pool": "fill"}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range blocks.Items {
		total += len(b.Spec.Allocations)
	}
	if len(blocks.Items) != 16 || total != 254 {
		t.Fatalf("%d blocks holding %d addresses", len(blocks.Items), total)
	}
	var claims v1alpha1.IPAMClaimList
	if err := c.List(ctx, &claims); err != nil {
		t.Fatal(err)
	}
	if len(claims.Items) < 254 {
		t.Fatalf("%d claims", len(claims.Items))
	}
	var pool apiv1alpha1.IPPool
	if err := c.Get(ctx, client.ObjectKey{Name: "fill"}, &pool); err != nil {
		t.Fatal(err)
	}
	if len(pool.Finalizers) != 1 || pool.Finalizers[0] != apiv1alpha1.FinalizerAllocations {
		t.Fatalf("finalizers %v", pool.Finalizers)
	}
}

// TestLargePools: a /16 and a /48 hand out addresses with small objects.
func TestLargePools(t *testing.T) {
	st, c := newStore(t)
	ctx := context.Background()
	v4 := createPool(t, c, "big4", "198.19.0.0/16", 0)
	v6 := createPool(t, c, "big6", "2001:db8:48::/48", 0)
	a := &allocator.Allocator{Store: st, Node: "large-node"}
	for i := 0; i < 70; i++ {
		cl, err := a.Assign(ctx, allocator.Request{ContainerID: fmt.Sprint("large-", i), IfName: "eth0",
			Wants: []allocator.Want{{Ranges: []allocator.Range{v4}}, {Ranges: []allocator.Range{v6}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cl.Addresses) != 2 || !v4.CIDR.Contains(cl.Addresses[0].Addr) || !v6.CIDR.Contains(cl.Addresses[1].Addr) {
			t.Fatalf("addresses %v", cl.Addresses)
		}
	}
	// 70 addresses need two /26 blocks (63 usable in the first) and two
	// /122 blocks.
	var blocks v1alpha1.IPAMBlockList
	if err := c.List(ctx, &blocks, client.MatchingFields{"spec.node": "large-node"}); err != nil {
		t.Fatal(err)
	}
	if len(blocks.Items) != 4 {
		t.Fatalf("%d blocks", len(blocks.Items))
	}
}

// TestLargestBlockFitsEtcd: a full block of the largest size policy allows
// (/116: 4096 slots; /20 is the same for IPv4) is stored, read back and
// updated, and its object stays far below etcd's 1.5 MiB limit.
func TestLargestBlockFitsEtcd(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	p := allocator.Range{Pool: "huge", CIDR: netip.MustParsePrefix("2001:db8:ffff::/48"), BlockSize: 116}
	cidr, _ := p.BlockAt(big.NewInt(7))
	b := allocator.NewBlock(p, cidr, "huge-node")
	for i := 0; ; i++ {
		if _, _, _, err := b.Allocate(allocator.ClaimID("net", fmt.Sprintf("container-%064d", i), "eth0"), "node-a", allocator.Cooldown{}); err != nil {
			break
		}
	}
	if len(b.Slots) != 4096 {
		t.Fatalf("%d slots", len(b.Slots))
	}
	raw, err := json.Marshal(kubestore.BlockToAPI(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a full /116 block is %d bytes of JSON", len(raw))
	if len(raw) > 512*1024 {
		t.Fatalf("a full block is %d bytes: too close to etcd's limit", len(raw))
	}
	if err := st.CreateBlock(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetBlock(ctx, cidr)
	if err != nil || len(got.Slots) != 4096 {
		t.Fatalf("read back %v slots, %v", len(got.Slots), err)
	}
	addr := got.Addr(100)
	s := got.Slots[100]
	if !got.Release(addr, s.Claim, s.Seq, time.Now()) {
		t.Fatal("release failed")
	}
	if err := st.UpdateBlock(ctx, got); err != nil {
		t.Fatal(err)
	}
	// A stale copy cannot overwrite the update.
	if err := st.UpdateBlock(ctx, b); !errors.Is(err, allocator.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
}

// TestBlockReleasesStored: a block's release records go to the API server
// and come back (the CRD's schema keeps them), also in the largest block
// with half its addresses cooling down, which stays far below etcd's limit.
func TestBlockReleasesStored(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	p := allocator.Range{Pool: "cooling", CIDR: netip.MustParsePrefix("2001:db8:c001::/48"), BlockSize: 116}
	cidr, _ := p.BlockAt(big.NewInt(3))
	b := allocator.NewBlock(p, cidr, "cooling-node")
	for i := 0; ; i++ {
		if _, _, _, err := b.Allocate(allocator.ClaimID("net", fmt.Sprintf("container-%064d", i), "eth0"), "cooling-node", allocator.Cooldown{}); err != nil {
			break
		}
	}
	if err := st.CreateBlock(ctx, b); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Truncate(time.Second)
	for off := 0; off < b.Size(); off += 2 {
		if s, ok := b.Slots[off]; ok && !b.Release(b.Addr(off), s.Claim, s.Seq, at) {
			t.Fatalf("release of slot %d failed", off)
		}
	}
	if err := st.UpdateBlock(ctx, b); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(kubestore.BlockToAPI(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a /116 block, half held and half cooling down, is %d bytes of JSON", len(raw))
	if len(raw) > 512*1024 {
		t.Fatalf("%d bytes: too close to etcd's limit", len(raw))
	}
	got, err := st.GetBlock(ctx, cidr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Released) != len(b.Released) || len(got.Released) < 2047 {
		t.Fatalf("read back %d release records, wrote %d", len(got.Released), len(b.Released))
	}
	for off, r := range b.Released {
		if g := got.Released[off]; g.Node != "cooling-node" || !g.At.Equal(r.At) {
			t.Fatalf("slot %d: read back %+v, wrote %+v", off, g, r)
		}
	}
}

// TestErrorsMapToSentinels: the API server's answers reach the engine as
// its sentinels, through the store's own REST client: a missing object is
// ErrNotFound, a taken name ErrExists (not a conflict: the engine reads
// the winner), a stale write or delete ErrConflict, an unreachable server
// ErrUnavailable.
func TestErrorsMapToSentinels(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	if _, err := st.GetClaim(ctx, "c-missing"); !errors.Is(err, allocator.ErrNotFound) {
		t.Fatalf("missing claim: %v, want ErrNotFound", err)
	}
	c := &allocator.Claim{ID: "c-sentinels", ContainerID: "ctr", IfName: "eth0", Node: "n", Pod: allocator.PodRef{Namespace: "ns", Name: "p"}}
	if err := st.CreateClaim(ctx, c); err != nil || c.Version == "" {
		t.Fatalf("create: %v, version %q", err, c.Version)
	}
	dup := *c
	if err := st.CreateClaim(ctx, &dup); !errors.Is(err, allocator.ErrExists) || errors.Is(err, allocator.ErrConflict) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	stale := *c
	stale.Version = "1"
	if err := st.DeleteClaim(ctx, &stale); !errors.Is(err, allocator.ErrConflict) {
		t.Fatalf("delete with a stale version: %v, want ErrConflict", err)
	}
	if err := st.DeleteClaim(ctx, c); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := st.GetClaim(ctx, c.ID); !errors.Is(err, allocator.ErrNotFound) {
		t.Fatalf("deleted claim: %v, want ErrNotFound", err)
	}
	down, err := kubestore.NewClient(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (kubestore.Store{Client: down}).GetClaim(ctx, "c-x"); !errors.Is(err, allocator.ErrUnavailable) {
		t.Fatalf("API server down: %v, want ErrUnavailable", err)
	}
}

// TestClaimedBlocks: a pool's claimed blocks and their nodes come from a
// metadata-only list, and only that pool's.
func TestClaimedBlocks(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	p := allocator.Range{Pool: "claimed", CIDR: netip.MustParsePrefix("203.0.113.0/26"), BlockSize: 28}
	other := allocator.Range{Pool: "claimed-other", CIDR: netip.MustParsePrefix("203.0.113.64/26"), BlockSize: 28}
	want := map[netip.Prefix]string{}
	for i, node := range []string{"node-a", "node-b", ""} {
		cidr, _ := p.BlockAt(big.NewInt(int64(i)))
		if err := st.CreateBlock(ctx, allocator.NewBlock(p, cidr, node)); err != nil {
			t.Fatal(err)
		}
		want[cidr] = node
	}
	oc, _ := other.BlockAt(big.NewInt(0))
	if err := st.CreateBlock(ctx, allocator.NewBlock(other, oc, "node-a")); err != nil {
		t.Fatal(err)
	}
	// The list comes from the watch cache, which may be a moment behind.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := st.ClaimedBlocks(ctx, "claimed")
		if err != nil {
			t.Fatal(err)
		}
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClaimedBlocks = %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
