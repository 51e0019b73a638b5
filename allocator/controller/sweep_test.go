package controller_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// TestSweepReadsOnly: a sweep of the cache's own objects, read from the
// informers' stores or listed with client.UnsafeDisableDeepCopy, finds
// every candidate of a cluster of 1,500 pods (gone pods' claims, slots no
// claim records, empty blocks of deleted nodes) and changes none of the
// objects; its metrics say what it saw.
func TestSweepReadsOnly(t *testing.T) {
	ctx := context.Background()
	f := newSweepFixture(1500)
	all := func() []client.Object {
		var out []client.Object
		for _, objs := range [][]client.Object{f.claims, f.blocks, f.pods, f.nodes} {
			out = append(out, objs...)
		}
		return out
	}
	var before []client.Object
	slots := 0
	for _, o := range all() {
		before = append(before, o.DeepCopyObject().(client.Object))
		if b, ok := o.(*v1alpha1.IPAMBlock); ok {
			slots += len(b.Spec.Allocations)
		}
	}
	for _, tc := range []struct {
		name   string
		reader client.Reader
	}{
		{"the informers' stores", f},
		{"lists", struct{ client.Reader }{f}}, // no GetInformer: List
	} {
		gc := &controller.Collector{Reader: tc.reader, Live: f, GracePeriod: time.Hour, Log: testr.New(t)}
		sweeps := metricValue(t, "poolguard_gc_sweep_duration_seconds", nil)
		for range 2 {
			rep, err := gc.Sweep(ctx)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if rep.Suspects != f.garbage || rep.ClaimsReleased+rep.SlotsReleased+rep.BlocksDeleted != 0 {
				t.Errorf("%s: %+v, want %d suspects and nothing freed within the grace period", tc.name, rep, f.garbage)
			}
		}
		if got := metricValue(t, "poolguard_gc_sweep_duration_seconds", nil); got != sweeps+2 {
			t.Errorf("%s: sweep duration observed %v times, want 2", tc.name, got-sweeps)
		}
		for kind, want := range map[string]int{"claims": len(f.claims), "blocks": len(f.blocks), "slots": slots, "pods": len(f.pods), "nodes": len(f.nodes)} {
			if got := metricValue(t, "poolguard_gc_sweep_objects", map[string]string{"kind": kind}); got != float64(want) {
				t.Errorf("%s: poolguard_gc_sweep_objects{kind=%q} = %v, want %d", tc.name, kind, got, want)
			}
		}
		if got := metricValue(t, "poolguard_gc_suspects", nil); got != float64(f.garbage) {
			t.Errorf("%s: poolguard_gc_suspects = %v, want %d", tc.name, got, f.garbage)
		}
	}
	for i, o := range all() {
		if !equality.Semantic.DeepEqual(o, before[i]) {
			t.Fatalf("the sweep changed the cached %T %s", o, o.GetName())
		}
	}
}
