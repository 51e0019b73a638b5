package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore"
)

// metricValue returns the value of a counter, gauge or histogram's count
// in controller-runtime's registry, for the metric whose labels include
// labels; 0 when there is none yet.
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					matched++
				}
			}
			if matched != len(labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// TestPodGone: a pod's deletion frees its claim once the grace period has
// passed since, not sooner, and without waiting for the next full sweep
// (an hour away here); a pod replaced by another of the same name (a
// StatefulSet's) frees the old pod's claim and keeps the new one's; a
// live pod's claim is kept.
func TestPodGone(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "gone-pool", "198.18.204.0/28")
	st := kubestore.Store{Client: lean}
	a := &allocator.Allocator{Store: st, Node: "gone-node"}
	mkPod := func(name string) *corev1.Pod {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
		if err := kc.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		return pod
	}
	ref := func(pod *corev1.Pod) allocator.PodRef {
		return allocator.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	}
	doomed, stays, sts := mkPod("gone-doomed"), mkPod("gone-stays"), mkPod("gone-sts-0")
	doomedClaim := assign(t, a, p, "gone-doomed", ref(doomed))
	staysClaim := assign(t, a, p, "gone-stays", ref(stays))
	oldSTSClaim := assign(t, a, p, "gone-sts-old", ref(sts))

	const grace = 3 * time.Second
	sweeps := metricValue(t, "poolguard_gc_sweep_duration_seconds", nil)
	freedByPods := metricValue(t, "poolguard_gc_freed_total", map[string]string{"kind": "claim", "trigger": "pod_deleted"})
	startManager(t, controller.Options{GracePeriod: grace, Interval: time.Hour})
	// The first sweep, at start, lists the pods through the informer the
	// pod controller watches: once it is done, that informer has synced
	// and sees the deletions below.
	eventually(t, "the first sweep", func() (bool, string) {
		n := metricValue(t, "poolguard_gc_sweep_duration_seconds", nil)
		return n > sweeps, fmt.Sprint(n, " sweeps")
	})

	deleted := time.Now()
	for _, pod := range []*corev1.Pod{doomed, sts} {
		if err := kc.Delete(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	// The StatefulSet's pod comes back under its name, with a new UID,
	// and gets its address.
	sts2 := mkPod("gone-sts-0")
	newSTSClaim := assign(t, a, p, "gone-sts-new", ref(sts2))

	held := func(c *allocator.Claim) bool {
		_, err := st.GetClaim(ctx, c.ID)
		return err == nil
	}
	time.Sleep(grace / 3)
	if !held(doomedClaim) || !held(oldSTSClaim) {
		t.Fatalf("claims freed %s after their pod's deletion, within the grace period %s", time.Since(deleted).Round(time.Millisecond), grace)
	}
	eventually(t, "the deleted pods' claims freed", func() (bool, string) {
		return !held(doomedClaim) && !held(oldSTSClaim), fmt.Sprintf("doomed held %v, old StatefulSet pod's held %v", held(doomedClaim), held(oldSTSClaim))
	})
	if took := time.Since(deleted); took < grace {
		t.Errorf("freed %s after the deletion, within the grace period %s", took, grace)
	}
	if !held(staysClaim) || !held(newSTSClaim) {
		t.Errorf("a live pod's claim was freed: stays %v, the StatefulSet's new pod's %v", held(staysClaim), held(newSTSClaim))
	}
	for _, c := range []*allocator.Claim{doomedClaim, oldSTSClaim} {
		blk, err := st.GetBlock(ctx, c.Addresses[0].Block)
		if err != nil {
			t.Fatal(err)
		}
		if _, s, ok := blk.Find(c.ID); ok {
			t.Errorf("%s still held in its block by %s (seq %d)", c.Addresses[0].Addr, c.ID, s.Seq)
		}
	}
	if got := metricValue(t, "poolguard_gc_freed_total", map[string]string{"kind": "claim", "trigger": "pod_deleted"}); got != freedByPods+2 {
		t.Errorf("poolguard_gc_freed_total{kind=claim,trigger=pod_deleted} went from %v to %v, want +2: freed by the pod controller, not a sweep", freedByPods, got)
	}
}
