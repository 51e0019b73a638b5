package charts_test

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	storev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/api/v1alpha1"
)

// testNodePluginIPAM: the plugin's account with tokens bound to two Nodes,
// as the installer requests them, allocating through the allocator and the
// store the plugin runs. Each node allocates, claims its block and borrows
// from the other's when its own is full; a node that tries to free, take
// over or forge the other node's claims, slots, affinity or blocks is
// refused by the chart's <release>-node-plugin-ipam policy, and so is a
// plugin token bound to no node. Each node's release is recorded in the
// block naming it (for the cooldown), in the other node's block too; a
// node may drop any record (pruning), but not add one naming the other
// node or of a slot it never held, nor change the other node's.
func testNodePluginIPAM(ctx context.Context, t *testing.T, c *cluster) {
	admin := kubernetes.NewForConfigOrDie(c.cfg)
	// A pool of two blocks of 8 (.0 and .15 reserved): one per node.
	poolCIDR := netip.MustParsePrefix("198.18.7.16/28")
	must(t, c.admin.Create(ctx, &v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "per-node"},
		Spec:       v1alpha1.IPPoolSpec{CIDR: poolCIDR.String(), BlockSize: 29, AssignmentMode: v1alpha1.AssignmentManual},
	}))
	pool := allocator.Range{Pool: "per-node", CIDR: poolCIDR, BlockSize: 29}
	store := func(cfg *rest.Config) kubestore.Store {
		cl, err := kubestore.NewClient(cfg)
		must(t, err)
		return kubestore.Store{Client: cl, History: true} // as the chart configures the plugin
	}
	nodeA, nodeB := "node-a", "node-b"
	sa, sb := store(c.pluginToken(ctx, t, admin, nodeA)), store(c.pluginToken(ctx, t, admin, nodeB))
	a := &allocator.Allocator{Store: sa, Node: nodeA}
	b := &allocator.Allocator{Store: sb, Node: nodeB}
	unbound := store(c.pluginToken(ctx, t, admin, ""))
	assign := func(al *allocator.Allocator, ctr string) *allocator.Claim {
		t.Helper()
		claim, err := al.Assign(ctx, allocator.Request{
			Network: "net", ContainerID: ctr, IfName: "eth0", Pod: allocator.PodRef{Namespace: "default", Name: ctr},
			Wants: []allocator.Want{{Ranges: []allocator.Range{pool}}},
		})
		if err != nil {
			t.Fatalf("%s: ADD of %s: %v", al.Node, ctr, err)
		}
		return claim
	}
	refused := func(what string, err error, want string) {
		t.Helper()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want Forbidden by the node policy, saying %q", what, err, want)
		}
	}

	// Node A's pod, in A's block; node B fills its own block (7 usable
	// addresses), then borrows a slot of A's block.
	ownA := assign(a, "a-1")
	blockA := ownA.Addresses[0].Block
	var bLast *allocator.Claim
	for i := range 8 {
		bLast = assign(b, fmt.Sprintf("b-%d", i+1))
	}
	if bLast.Addresses[0].Block != blockA {
		t.Fatalf("node B's eighth address %s is not borrowed from node A's block %s", bLast.Addresses[0].Addr, blockA)
	}

	claimA, err := sb.GetClaim(ctx, ownA.ID)
	must(t, err)
	refused("B deletes A's claim", sb.DeleteClaim(ctx, claimA), "of node 'node-a'")
	forged := *bLast
	forged.ID, forged.ContainerID, forged.Node, forged.Version = allocator.ClaimID("net", "forged", "eth0"), "forged", nodeA, ""
	refused("B creates a claim in A's name", sb.CreateClaim(ctx, &forged), "set the plugin configuration's nodeName to 'node-b'")

	blk, err := sb.GetBlock(ctx, blockA)
	must(t, err)
	off, _ := blk.Offset(ownA.Addresses[0].Addr)
	freed := blk.Clone()
	delete(freed.Slots, off)
	refused("B frees A's slot in A's block", sb.UpdateBlock(ctx, freed), "not another node's")
	taken := blk.Clone()
	taken.Slots[off] = allocator.Slot{Claim: bLast.ID, Node: nodeB, Seq: taken.Slots[off].Seq}
	refused("B takes over A's slot", sb.UpdateBlock(ctx, taken), "not another node's")
	moved := blk.Clone()
	moved.Node = nodeB
	refused("B makes A's block its own", sb.UpdateBlock(ctx, moved), "may not change IPAMBlock")
	refused("B deletes A's block", sb.DeleteBlock(ctx, blk), "may not delete IPAMBlocks")
	affA, err := sb.GetAffinity(ctx, nodeA)
	must(t, err)
	affA.Blocks = nil
	refused("B empties A's affinity", sb.SaveAffinity(ctx, affA), "of node 'node-a'")
	spare := netip.MustParsePrefix("198.18.7.40/29")
	refused("B claims a block for A", sb.CreateBlock(ctx, allocator.NewBlock(pool, spare, nodeA)), "for node 'node-a'")

	fresh := *ownA
	fresh.ID, fresh.ContainerID, fresh.Version = allocator.ClaimID("net", "unbound", "eth0"), "unbound", ""
	refused("a plugin token bound to no node writes a claim", unbound.CreateClaim(ctx, &fresh), "not bound to a node")
	// A node may not change even its own claim: stripping the history's
	// finalizer would let its release go unrecorded.
	var own storev1alpha1.IPAMClaim
	must(t, sb.Client.Get(ctx, kubestore.Claims, bLast.ID, kubestore.ReadOpts{}, &own))
	own.Finalizers = nil
	own.Labels = map[string]string{"tampered": "true"}
	refused("B changes its own claim", sb.Client.Update(ctx, kubestore.Claims, own.Name, &own), "may not change IPAMClaim")
	// Nor create one without it, which it could delete before the
	// recorder marks it.
	unmarked := sb
	unmarked.History = false
	bare := *bLast
	bare.ID, bare.ContainerID, bare.Version = allocator.ClaimID("net", "unmarked", "eth0"), "unmarked", ""
	refused("B creates a claim the history would not hold", unmarked.CreateClaim(ctx, &bare), "with the finalizer ipam.poolguard.dev/history")

	// Everything of A is still there, and each node releases its own: B
	// its borrowed slot in A's block, A its own.
	if _, err := sb.GetClaim(ctx, ownA.ID); err != nil {
		t.Errorf("A's claim after B's attempts: %v", err)
	}
	if now, err := sb.GetBlock(ctx, blockA); err != nil || now.Slots[off].Claim != ownA.ID || now.Node != nodeA {
		t.Errorf("A's block after B's attempts: %+v %v", now, err)
	}
	must(t, b.Release(ctx, "net", bLast.ContainerID, "eth0"))
	must(t, a.Release(ctx, "net", ownA.ContainerID, "eth0"))
	after, err := sa.GetBlock(ctx, blockA)
	must(t, err)
	if len(after.Slots) != 0 {
		t.Errorf("node A's block after both releases: %v, want empty", after.Slots)
	}
	testReleaseRecords(ctx, t, sb, refused, after, off, bLast.Addresses[0].Addr, pool)
	for i := range 7 {
		must(t, b.Release(ctx, "net", fmt.Sprintf("b-%d", i+1), "eth0"))
	}

	// The policy's cost at a block's largest, 4,096 slots (a /116): node
	// A's full block but for one slot, which node B borrows; then B tries
	// to free one of A's.
	v6 := allocator.Range{Pool: "per-node-v6", CIDR: netip.MustParsePrefix("2001:db8:7::/112"), BlockSize: 116}
	bigCIDR, ok := v6.BlockAt(big.NewInt(0))
	if !ok {
		t.Fatal("no first block")
	}
	full := allocator.NewBlock(v6, bigCIDR, nodeA)
	for i := 0; ; i++ {
		if _, _, _, err := full.Allocate(allocator.ClaimID("net", fmt.Sprintf("a-%d", i), "eth0"), nodeA, allocator.Cooldown{}); err != nil {
			break
		}
	}
	offsets := full.Offsets()
	delete(full.Slots, offsets[len(offsets)-1])
	// Half of A's slots freed a moment ago: some 2,000 release records,
	// which B's writes below carry along.
	now := time.Now()
	for i := 1; i < len(offsets)-1; i += 2 {
		s := full.Slots[offsets[i]]
		full.Release(full.Addr(offsets[i]), s.Claim, s.Seq, now)
	}
	must(t, store(c.cfg).CreateBlock(ctx, full))
	got, err := sb.GetBlock(ctx, bigCIDR)
	must(t, err)
	borrowed := got.Clone()
	bAddr, bSeq, _, err := borrowed.Allocate(allocator.ClaimID("net", "b-borrows", "eth0"), nodeB, allocator.Cooldown{Now: now, Period: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.UpdateBlock(ctx, borrowed); err != nil {
		t.Fatalf("node B borrowing the last slot of a %d-slot block with %d release records: %v", len(borrowed.Slots), len(borrowed.Released), err)
	}
	stolen := borrowed.Clone()
	delete(stolen.Slots, offsets[0])
	refused("B frees A's slot in a 4,096-slot block", sb.UpdateBlock(ctx, stolen), "not another node's")
	released := borrowed.Clone()
	if !released.Release(bAddr, allocator.ClaimID("net", "b-borrows", "eth0"), bSeq, time.Now()) {
		t.Fatal("B's release of its borrowed slot failed")
	}
	bOff, _ := released.Offset(bAddr)
	inAsName := released.Clone()
	inAsName.Released[bOff] = allocator.Cooling{Node: nodeA, At: inAsName.Released[bOff].At}
	refused("B frees its borrowed slot of a 4,096-slot block and records the release in A's name", sb.UpdateBlock(ctx, inAsName), "only release records naming its own node")
	if err := sb.UpdateBlock(ctx, released); err != nil {
		t.Fatalf("node B releasing its borrowed slot of a 4,096-slot block with %d release records: %v", len(released.Released), err)
	}
}

// testReleaseRecords: block is node A's, both nodes having released their
// slots in it (A's at offset offA, B's borrowed one at addrB). Each release
// was recorded naming its node; node B may drop A's record, and may not
// add, change or take over records otherwise.
func testReleaseRecords(ctx context.Context, t *testing.T, sb kubestore.Store, refused func(string, error, string), block *allocator.Block, offA int, addrB netip.Addr, pool allocator.Range) {
	t.Helper()
	offB, _ := block.Offset(addrB)
	if a, b := block.Released[offA], block.Released[offB]; a.Node != "node-a" || b.Node != "node-b" || a.At.IsZero() || b.At.IsZero() {
		t.Fatalf("release records of node A's block after both released: %v; want slot %d by node-a and slot %d by node-b", block.Released, offA, offB)
	}
	cur, err := sb.GetBlock(ctx, block.CIDR)
	must(t, err)
	never := -1 // a slot nobody held
	for o := 1; o < cur.Size(); o++ {
		if _, used := cur.Slots[o]; !used && cur.Released[o] == (allocator.Cooling{}) && !allocator.Reserved(pool.CIDR, cur.Addr(o)) {
			never = o
			break
		}
	}
	if never < 0 {
		t.Fatalf("no slot free of records in %v", cur.Released)
	}
	const want = "only release records naming its own node, of slots it held"
	for _, tc := range []struct {
		name string
		edit func(b *allocator.Block)
	}{
		{"B shortens A's cooldown by moving A's record back", func(b *allocator.Block) {
			r := b.Released[offA]
			r.At = r.At.Add(-time.Hour)
			b.Released[offA] = r
		}},
		{"B lengthens A's cooldown", func(b *allocator.Block) {
			r := b.Released[offA]
			r.At = r.At.Add(time.Hour)
			b.Released[offA] = r
		}},
		{"B takes A's record over", func(b *allocator.Block) {
			b.Released[offA] = allocator.Cooling{Node: "node-b", At: b.Released[offA].At}
		}},
		{"B records a release in A's name", func(b *allocator.Block) { b.Released[never] = allocator.Cooling{Node: "node-a", At: time.Now()} }},
		{"B records a release of a slot it never held", func(b *allocator.Block) { b.Released[never] = allocator.Cooling{Node: "node-b", At: time.Now()} }},
		{"B moves its own record to a slot it never held", func(b *allocator.Block) {
			b.Released[never] = b.Released[offB]
			delete(b.Released, offB)
		}},
		{"B changes its own record (only a release writes one)", func(b *allocator.Block) {
			r := b.Released[offB]
			r.At = r.At.Add(time.Hour)
			b.Released[offB] = r
		}},
	} {
		edited := cur.Clone()
		tc.edit(edited)
		refused(tc.name, sb.UpdateBlock(ctx, edited), want)
	}
	withRecord := allocator.NewBlock(pool, netip.MustParsePrefix("198.18.7.40/29"), "node-b")
	withRecord.Released = map[int]allocator.Cooling{3: {Node: "node-b", At: time.Now()}}
	refused("B creates a block with a release record", sb.CreateBlock(ctx, withRecord), want)

	// Pruning: B drops A's record (as allocating in the block does once it
	// has expired), and its own.
	pruned := cur.Clone()
	delete(pruned.Released, offA)
	if err := sb.UpdateBlock(ctx, pruned); err != nil {
		t.Fatalf("B drops A's release record: %v", err)
	}
	delete(pruned.Released, offB)
	if err := sb.UpdateBlock(ctx, pruned); err != nil {
		t.Fatalf("B drops its own release record: %v", err)
	}
}

// pluginToken is a rest.Config with a token of the chart's plugin account,
// bound to the named Node (created if needed), or to nothing when node is
// empty: what the installer requests, and what it never does.
func (c *cluster) pluginToken(ctx context.Context, t *testing.T, admin kubernetes.Interface, node string) *rest.Config {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr[int64](3600)}}
	if node != "" {
		n, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			n, err = admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		}
		must(t, err)
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID}
	}
	tr, err := admin.CoreV1().ServiceAccounts(installNS).CreateToken(ctx, installRelease+"-cni", req, metav1.CreateOptions{})
	must(t, err)
	return &rest.Config{Host: c.cfg.Host, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.cfg.CAData}}
}
