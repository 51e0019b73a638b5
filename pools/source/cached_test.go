package source

import (
	"context"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"poolguard.dev/poolguard/api/v1alpha1"
)

// fakeInformer hands its handler to the test, which plays the informer.
type fakeInformer struct {
	handler toolscache.ResourceEventHandler
	synced  atomic.Bool
}

func (f *fakeInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	f.handler = h
	return registration{f: f}, nil
}

// registration implements only HasSynced, all Cached calls.
type registration struct {
	toolscache.ResourceEventHandlerRegistration
	f *fakeInformer
}

func (r registration) HasSynced() bool { return r.f.synced.Load() }

// countingReader counts Lists, i.e. index rebuilds.
type countingReader struct {
	client.Reader
	lists atomic.Int32
}

func (c *countingReader) List(ctx context.Context, l client.ObjectList, opts ...client.ListOption) error {
	c.lists.Add(1)
	return c.Reader.List(ctx, l, opts...)
}

// TestCachedRebuildsOnlyOnEvents checks that Cached lists like Native until
// its handler has synced, then reuses its index until an IPPool event.
func TestCachedRebuildsOnlyOnEvents(t *testing.T) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	pool := func(name, cidr string) *v1alpha1.IPPool {
		return &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPPoolSpec{CIDR: cidr}}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(pool("a", "198.51.100.0/24")).Build()
	r := &countingReader{Reader: c}
	inf := &fakeInformer{}
	src, err := NewCached(inf, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	snapshot := func() []string {
		t.Helper()
		ix, err := src.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range ix.All() {
			names = append(names, p.Name)
		}
		return names
	}

	snapshot()
	snapshot()
	if n := r.lists.Load(); n != 2 {
		t.Fatalf("before sync: %d lists for 2 snapshots, want one each", n)
	}
	inf.synced.Store(true)
	snapshot()
	snapshot()
	if n := r.lists.Load(); n != 3 {
		t.Fatalf("after sync: %d lists, want one more for both snapshots", n)
	}
	if err := c.Create(ctx, pool("b", "203.0.113.0/24")); err != nil {
		t.Fatal(err)
	}
	inf.handler.OnAdd(pool("b", "203.0.113.0/24"), false)
	if got := snapshot(); len(got) != 2 || r.lists.Load() != 4 {
		t.Fatalf("after an add event: pools %v after %d lists, want both after one more list", got, r.lists.Load())
	}
	inf.handler.OnDelete(pool("a", ""))
	snapshot()
	if n := r.lists.Load(); n != 5 {
		t.Fatalf("after a delete event: %d lists, want 5", n)
	}
}
