package controller_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

var (
	env *harness.Env
	kc  client.Client
	// lean is the allocator store's own client.
	lean *kubestore.Client
)

func TestMain(m *testing.M) {
	if benchmarksOnly() {
		// BenchmarkSweep is pure logic: no control plane to start, nor
		// to compete with it for the machine's cores.
		os.Exit(m.Run())
	}
	var err error
	env, err = harness.Start(harness.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if kc, err = harness.Client(env.Config); err == nil {
		lean, err = kubestore.NewClient(env.Config)
	}
	code := 1
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	os.Exit(code)
}

// benchmarksOnly reports whether this run runs no test: -run '^$', as
// make bench and the README's benchmark commands pass it.
func benchmarksOnly() bool {
	flag.Parse()
	run := flag.Lookup("test.run")
	return run != nil && run.Value.String() == "^$"
}

// startManager runs the allocator's controllers as the webhook's manager
// does, until the test ends.
func startManager(t *testing.T, o controller.Options) {
	t.Helper()
	harness.StartManager(t, env.Config, testr.New(t), func(mgr manager.Manager) error { return controller.Setup(mgr, o) })
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within 30s; last: %s", what, last)
}

func mkPool(t *testing.T, name, cidr string) allocator.Range {
	t.Helper()
	p := &apiv1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: apiv1alpha1.IPPoolSpec{CIDR: cidr, BlockSize: 28}}
	if err := kc.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return kubestore.FromIPPools([]apiv1alpha1.IPPool{*p}).Ranges[name]
}

func assign(t *testing.T, a *allocator.Allocator, p allocator.Range, ctr string, pod allocator.PodRef) *allocator.Claim {
	t.Helper()
	c, err := a.Assign(context.Background(), allocator.Request{ContainerID: ctr, IfName: "eth0", Pod: pod,
		Wants: []allocator.Want{{Ranges: []allocator.Range{p}}}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPoolStatusAndDeletion: the status follows allocations; deleting a
// pool in use is held with a condition until its last address is released,
// then the finalizer goes and the pool with it.
func TestPoolStatusAndDeletion(t *testing.T) {
	startManager(t, controller.Options{GracePeriod: time.Hour, Interval: time.Hour})
	ctx := context.Background()
	p := mkPool(t, "status-pool", "198.18.200.0/27")
	a := &allocator.Allocator{Store: kubestore.Store{Client: lean}, Node: "status-node"}
	var claims []*allocator.Claim
	for i := 0; i < 5; i++ {
		claims = append(claims, assign(t, a, p, fmt.Sprint("status-", i), allocator.PodRef{Namespace: "default", Name: fmt.Sprint("p", i)}))
	}
	get := func() (*apiv1alpha1.IPPool, error) {
		var o apiv1alpha1.IPPool
		err := kc.Get(ctx, client.ObjectKey{Name: "status-pool"}, &o)
		return &o, err
	}
	eventually(t, "status shows 5 of 30 allocated", func() (bool, string) {
		o, err := get()
		if err != nil {
			return false, err.Error()
		}
		s := o.Status
		return s.Family == "IPv4" && s.Capacity == 30 && s.Allocated == 5 && s.Free == 25, fmt.Sprintf("%+v", s)
	})
	if err := kc.Delete(ctx, &apiv1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "status-pool"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deletion held with a condition", func() (bool, string) {
		o, err := get()
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(o.Status.Conditions, controller.ConditionDeletionHeld)
		return o.DeletionTimestamp != nil && c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", o.Status)
	})
	for _, c := range claims {
		if err := a.ReleaseClaim(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "pool gone once empty", func() (bool, string) {
		o, err := get()
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("%v %v %+v", err, o.Finalizers, o.Status)
	})
}

// TestCollectorInManager: the leader's collector frees the address of a
// pod that is gone, keeps the one of a live pod, and deletes the empty
// block of a deleted node.
func TestCollectorInManager(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "gc-pool", "198.18.201.0/26")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "gc-node"}}
	if err := kc.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	live := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gc-live"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if err := kc.Create(ctx, live); err != nil {
		t.Fatal(err)
	}
	// A static pod: the runtime knows it by its own UID, the API by its
	// mirror pod, whose UID differs and whose annotation names the static
	// one.
	const staticUID = "6d1f0c3a9e2b4c7d8e9f0a1b2c3d4e5f"
	mirror := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "gc-static-gc-node", Annotations: map[string]string{policy.AnnotationMirrorPod: staticUID}},
		Spec: corev1.PodSpec{NodeName: "gc-node", Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if err := kc.Create(ctx, mirror); err != nil {
		t.Fatal(err)
	}
	a := &allocator.Allocator{Store: kubestore.Store{Client: lean}, Node: "gc-node"}
	keep := assign(t, a, p, "gc-live", allocator.PodRef{Namespace: "default", Name: "gc-live", UID: string(live.UID)})
	static := assign(t, a, p, "gc-static", allocator.PodRef{Namespace: "default", Name: mirror.Name, UID: staticUID})
	gone := assign(t, a, p, "gc-gone", allocator.PodRef{Namespace: "default", Name: "gc-gone", UID: "3b0e7e2c-0000-0000-0000-000000000000"})
	// A second node's block, emptied, and the node deleted.
	b := &allocator.Allocator{Store: kubestore.Store{Client: lean}, Node: "gc-node-deleted"}
	c := assign(t, b, p, "gc-other", allocator.PodRef{Namespace: "default", Name: "gc-live", UID: string(live.UID)})
	if err := b.ReleaseClaim(ctx, c); err != nil {
		t.Fatal(err)
	}

	startManager(t, controller.Options{GracePeriod: time.Nanosecond, Interval: 200 * time.Millisecond})
	st := kubestore.Store{Client: lean}
	eventually(t, "gone pod's address freed, live pod's kept, empty block of the deleted node deleted", func() (bool, string) {
		_, errGone := st.GetClaim(ctx, gone.ID)
		_, errKeep := st.GetClaim(ctx, keep.ID)
		if _, err := st.GetClaim(ctx, static.ID); err != nil {
			t.Fatalf("the static pod's claim was freed: %v", err)
		}
		blk, errBlk := st.GetBlock(ctx, gone.Addresses[0].Block)
		_, errOther := st.GetBlock(ctx, c.Addresses[0].Block)
		if errBlk != nil {
			return false, errBlk.Error()
		}
		_, _, goneHeld := blk.Find(gone.ID)
		_, _, keepHeld := blk.Find(keep.ID)
		// The sweep deletes the empty block first and the affinity
		// that named it after: wait for both, not just the block.
		aff, errAff := st.GetAffinity(ctx, "gc-node-deleted")
		affGone := errAff == nil && aff.Version == ""
		return isNotFound(errGone) && errKeep == nil && !goneHeld && keepHeld && isNotFound(errOther) && affGone,
			fmt.Sprintf("gone claim: %v, keep claim: %v, gone held %v, keep held %v, other block: %v, deleted node's affinity: %+v %v", errGone, errKeep, goneHeld, keepHeld, errOther, aff, errAff)
	})
}

// TestCollectorNeverFreesReassigned: an orphaned slot (an ADD killed after
// its block write) that is freed and handed out again before the collector
// acts is not freed by it. In production the collector lists from the
// informer cache, which lags: here it lists from a laggingReader that
// keeps serving what it listed before the reassignment, so the collector
// does decide, from stale data, to free the slot. The reassignment goes
// to the same attachment (its ADD retried after the node's DEL), so the
// slot names the same claim as the stale copy and the claim's re-check
// passes too: only the slot's sequence number, which the release names,
// saves the address.
func TestCollectorNeverFreesReassigned(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "reassign-pool", "198.51.100.0/30") // 2 usable: forces reuse
	st := kubestore.Store{Client: lean}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reassigned"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if err := kc.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	ref := allocator.PodRef{Namespace: "default", Name: "reassigned", UID: string(pod.UID)}
	// The orphan: the slot an ADD of this attachment wrote before it was
	// killed, naming the claim it never wrote.
	retried := allocator.ClaimID("", "reassign-retried", "eth0")
	blk := allocator.NewBlock(p, p.CIDR, "")
	addr, seq, _, _ := blk.Allocate(retried, "node-a", allocator.Cooldown{})
	if err := st.CreateBlock(ctx, blk); err != nil {
		t.Fatal(err)
	}
	cache := &laggingReader{Reader: kc}
	gc := &controller.Collector{Reader: cache, Live: kc, Store: st, GracePeriod: time.Hour, Log: testr.New(t)}
	if rep, err := gc.Sweep(ctx); err != nil || rep.Suspects < 1 || rep.SlotsReleased != 0 {
		t.Fatalf("first sweep: %+v %v", rep, err)
	}
	// From here on the collector's lists are those of the first sweep.
	cache.freeze()

	// Meanwhile the node's DEL frees the orphan, another pod takes the
	// pool's other address, and the retried ADD of the same attachment
	// gets the orphan's address back, with a new sequence number.
	cur, err := st.GetBlock(ctx, p.CIDR)
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Release(addr, retried, seq, time.Now()) {
		t.Fatal("could not free the orphan by hand")
	}
	if err := st.UpdateBlock(ctx, cur); err != nil {
		t.Fatal(err)
	}
	// The reassignment at once is what this test needs: no cooldown.
	a := &allocator.Allocator{Store: st, Node: "n", Cooldown: 0}
	other := assign(t, a, p, "reassign-other", ref)
	again := assign(t, a, p, "reassign-retried", ref)
	if again.ID != retried || again.Addresses[0].Addr != addr || again.Addresses[0].Seq == seq {
		t.Fatalf("setup: the retried ADD got %+v (claim %s), want %s with a sequence number other than %d (claim %s)", again.Addresses[0], again.ID, addr, seq, retried)
	}

	// Make the collector act on what it saw: the stale orphan, whose claim
	// now exists but records the address with the new sequence number.
	gc.GracePeriod = 0
	rep, err := gc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cache.staleLists() == 0 {
		t.Fatal("setup: the second sweep did not list from the stale snapshot")
	}
	after, err := st.GetBlock(ctx, p.CIDR)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*allocator.Claim{other, again} {
		if got, s, ok := after.Find(c.ID); !ok || got != c.Addresses[0].Addr || s.Seq != c.Addresses[0].Seq {
			t.Errorf("the collector freed a reassigned address: %s (seq %d) of claim %s no longer held; block holds %v; sweep: %+v",
				c.Addresses[0].Addr, c.Addresses[0].Seq, c.ID, after.Slots, rep)
		}
	}
	if rep.SlotsReleased != 0 {
		t.Errorf("the collector reports %d slots freed from a stale listing, want 0", rep.SlotsReleased)
	}
}

// laggingReader stands for the informer cache at its worst: until frozen
// it lists and gets from the API server and records what it served; once
// frozen it keeps serving those records, however the objects have changed
// since. It keys a record by the list's Go type and kind (pods and nodes
// are both PartialObjectMetadataList) and ignores list options: the
// collector lists everything.
type laggingReader struct {
	client.Reader

	mu     sync.Mutex
	frozen bool
	lists  map[string]client.ObjectList
	objs   map[string]client.Object
	stale  int
}

func (r *laggingReader) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
}

// staleLists returns how many lists were served from the records.
func (r *laggingReader) staleLists() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stale
}

func (r *laggingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := fmt.Sprintf("%T %s", list, list.GetObjectKind().GroupVersionKind())
	if r.frozen {
		rec, ok := r.lists[k]
		if !ok {
			return fmt.Errorf("lagging reader: nothing recorded for %s", k)
		}
		r.stale++
		return setFrom(list, rec)
	}
	if err := r.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	if r.lists == nil {
		r.lists = map[string]client.ObjectList{}
	}
	r.lists[k] = list.DeepCopyObject().(client.ObjectList)
	return nil
}

func (r *laggingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := fmt.Sprintf("%T %s %s", obj, obj.GetObjectKind().GroupVersionKind(), key)
	if r.frozen {
		rec, ok := r.objs[k]
		if !ok {
			return fmt.Errorf("lagging reader: nothing recorded for %s", k)
		}
		return setFrom(obj, rec)
	}
	if err := r.Reader.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if r.objs == nil {
		r.objs = map[string]client.Object{}
	}
	r.objs[k] = obj.DeepCopyObject().(client.Object)
	return nil
}

// setFrom overwrites dst with a deep copy of rec, of the same type.
func setFrom(dst, rec runtime.Object) error {
	v := reflect.ValueOf(dst)
	c := reflect.ValueOf(rec.DeepCopyObject())
	if v.Type() != c.Type() {
		return fmt.Errorf("lagging reader: recorded %T, asked for %T", rec, dst)
	}
	v.Elem().Set(c.Elem())
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, allocator.ErrNotFound) }

// TestCollectorFreesSlotsTheClaimDoesNotRecord: an ADD killed after its
// block write, then retried, may take a slot in another block before it
// writes the claim. The first slot names an existing claim that does not
// record it: the collector frees it and keeps the claim's own.
func TestCollectorFreesSlotsTheClaimDoesNotRecord(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "retried-pool", "203.0.113.0/27") // two /28 blocks
	st := kubestore.Store{Client: lean}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "retried"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if err := kc.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	a := &allocator.Allocator{Store: st, Node: "retry-node"}
	c := assign(t, a, p, "retried", allocator.PodRef{Namespace: "default", Name: "retried", UID: string(pod.UID)})
	// The killed attempt's slot, in the pool's other block.
	other := netip.MustParsePrefix("203.0.113.16/28")
	if c.Addresses[0].Block == other {
		other = netip.MustParsePrefix("203.0.113.0/28")
	}
	blk := allocator.NewBlock(p, other, "retry-node")
	stray, _, _, _ := blk.Allocate(c.ID, "node-a", allocator.Cooldown{})
	if err := st.CreateBlock(ctx, blk); err != nil {
		t.Fatal(err)
	}
	gc := &controller.Collector{Reader: kc, Live: kc, Store: st, GracePeriod: time.Hour, Log: testr.New(t)}
	if rep, err := gc.Sweep(ctx); err != nil || rep.SlotsReleased != 0 || rep.Suspects < 1 {
		t.Fatalf("inside the grace period: %+v %v", rep, err)
	}
	gc.GracePeriod = 0
	if rep, err := gc.Sweep(ctx); err != nil || rep.SlotsReleased != 1 {
		t.Fatalf("after the grace period: %+v %v, want the stray slot %s freed", rep, err, stray)
	}
	if b, _ := st.GetBlock(ctx, other); len(b.Slots) != 0 {
		t.Fatalf("stray slot %s still held: %v", stray, b.Slots)
	}
	own, err := st.GetBlock(ctx, c.Addresses[0].Block)
	if err != nil {
		t.Fatal(err)
	}
	if addr, _, ok := own.Find(c.ID); !ok || addr != c.Addresses[0].Addr {
		t.Fatalf("the claim's own %s was freed", c.Addresses[0].Addr)
	}
	if _, err := st.GetClaim(ctx, c.ID); err != nil {
		t.Fatalf("claim: %v", err)
	}
}

// TestCollectorReleasesCoolDown: what the collector frees (a gone pod's
// claim, a slot no claim records) is recorded in its block at the
// collector's clock, with the slot's node, so it cools down before it is
// handed out again, as after a DEL.
func TestCollectorReleasesCoolDown(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "gc-cool-pool", "198.18.202.0/30") // one shared block, 2 usable
	st := kubestore.Store{Client: lean}
	a := &allocator.Allocator{Store: st, Node: "cool-node"}
	gone := assign(t, a, p, "cool-gone", allocator.PodRef{Namespace: "default", Name: "cool-gone", UID: "5c0e7e2c-0000-0000-0000-000000000000"})
	// The slot of an ADD killed before its claim write, on another node.
	blk, err := st.GetBlock(ctx, p.CIDR)
	if err != nil {
		t.Fatal(err)
	}
	orphan, _, _, err := blk.Allocate(allocator.ClaimID("", "cool-orphan", "eth0"), "cool-node-2", allocator.Cooldown{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateBlock(ctx, blk); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 14, 27, 5, 0, time.UTC)
	gc := &controller.Collector{Reader: kc, Live: kc, Store: st, GracePeriod: 0, Log: testr.New(t), Now: func() time.Time { return at }}
	if rep, err := gc.Sweep(ctx); err != nil || rep.ClaimsReleased != 1 || rep.SlotsReleased != 1 {
		t.Fatalf("sweep: %+v %v, want the gone pod's claim and the orphan freed", rep, err)
	}
	after, err := st.GetBlock(ctx, p.CIDR)
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]allocator.Cooling{gone.Addresses[0].Addr: {Node: "cool-node", At: at}, orphan: {Node: "cool-node-2", At: at}}
	if len(after.Slots) != 0 || len(after.Released) != len(want) {
		t.Fatalf("after the sweep the block holds %v and records %v, want releases %v", after.Slots, after.Released, want)
	}
	for addr, w := range want {
		off, _ := after.Offset(addr)
		if r := after.Released[off]; r.Node != w.Node || !r.At.Equal(w.At) {
			t.Errorf("release of %s recorded as %+v, want %+v", addr, r, w)
		}
	}
	// Within the cooldown, neither address is handed out.
	b := &allocator.Allocator{Store: st, Node: "cool-node", Cooldown: 5 * time.Minute, Now: func() time.Time { return at.Add(time.Minute) }}
	_, err = b.Assign(ctx, allocator.Request{ContainerID: "cool-next", IfName: "eth0", Pod: allocator.PodRef{Namespace: "default", Name: "cool-next"},
		Wants: []allocator.Want{{Ranges: []allocator.Range{p}}}})
	if !errors.Is(err, allocator.ErrExhausted) || !strings.Contains(err.Error(), "2 addresses cooling down after release (ipam.cooldown 5m0s), the first free again at 2026-11-29T14:32:05Z") {
		t.Fatalf("ADD within the cooldown of what the collector freed: %v", err)
	}
}
