package controller_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// TestCollectorLeavesReleasedClaims: a claim deleted by hand under a live
// pod waits for the history recorder (its finalizer); meanwhile the
// collector neither releases it nor frees the slot it still records, even
// with no grace period; once the claim is gone, the slot is nobody's and
// is freed.
func TestCollectorLeavesReleasedClaims(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "released-pool", "198.18.206.0/28")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "released"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if err := kc.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	st := kubestore.Store{Client: lean, History: true}
	a := &allocator.Allocator{Store: st, Node: "released-node"}
	c := assign(t, a, p, "released", allocator.PodRef{Namespace: "default", Name: "released", UID: string(pod.UID)})
	if err := kc.Delete(ctx, &v1alpha1.IPAMClaim{ObjectMeta: metav1.ObjectMeta{Name: c.ID}}); err != nil {
		t.Fatal(err)
	}
	held := func() bool {
		b, err := st.GetBlock(ctx, c.Addresses[0].Block)
		if err != nil {
			t.Fatal(err)
		}
		_, _, ok := b.Find(c.ID)
		return ok
	}
	live := &askedReader{Reader: kc}
	gc := &controller.Collector{Reader: kc, Live: live, Store: st, GracePeriod: 0, Log: testr.New(t)}
	// (Earlier tests leave garbage of their own, which the sweeps free
	// too: count only this test's.)
	if _, err := gc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !held() {
		t.Fatal("the slot of a claim waiting for the history recorder was freed")
	}
	// Not even a candidate: its slot is recorded, so the collector did
	// not have to ask the API server (whose answer saves it all the same).
	if live.asked(c.ID) {
		t.Error("the collector took the slot of a claim waiting for the history recorder for garbage, and had to re-read the claim")
	}
	// The recorder lets the claim go.
	var o v1alpha1.IPAMClaim
	if err := kc.Get(ctx, client.ObjectKey{Name: c.ID}, &o); err != nil || o.DeletionTimestamp == nil {
		t.Fatalf("the claim deleted by hand: %v %+v", err, o.ObjectMeta)
	}
	patch := client.MergeFrom(o.DeepCopy())
	controllerutil.RemoveFinalizer(&o, v1alpha1.FinalizerHistory)
	if err := kc.Patch(ctx, &o, patch); err != nil {
		t.Fatal(err)
	}
	if rep, err := gc.Sweep(ctx); err != nil || rep.SlotsReleased < 1 || held() {
		t.Fatalf("sweep once the claim is gone: %+v %v, want its slot freed (held: %v)", rep, err, held())
	}
}

// askedReader records the names it is asked to Get.
type askedReader struct {
	client.Reader
	mu    sync.Mutex
	names []string
}

func (r *askedReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.mu.Lock()
	r.names = append(r.names, key.Name)
	r.mu.Unlock()
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (r *askedReader) asked(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.names, name)
}
