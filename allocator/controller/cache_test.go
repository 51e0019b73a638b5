package controller_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

// transforms returns CacheOptions' transforms of pods and nodes, and the
// default one.
func transforms(t *testing.T) (pod, node, def toolscache.TransformFunc) {
	t.Helper()
	o := controller.CacheOptions()
	for obj, by := range o.ByObject {
		switch obj.(type) {
		case *corev1.Pod:
			pod = by.Transform
		case *corev1.Node:
			node = by.Transform
		}
	}
	if pod == nil || node == nil || o.DefaultTransform == nil {
		t.Fatalf("CacheOptions: pod transform %v, node transform %v, default %v: want all three", pod != nil, node != nil, o.DefaultTransform != nil)
	}
	return pod, node, o.DefaultTransform
}

// fullMeta is metadata with everything the API server may put there.
func fullMeta(annotations map[string]string) metav1.ObjectMeta {
	now := metav1.Now()
	return metav1.ObjectMeta{
		Namespace: "web", Name: "api-0", GenerateName: "api-", UID: "uid-api-0", ResourceVersion: "42", Generation: 3,
		CreationTimestamp: now, DeletionTimestamp: &now,
		Labels:          map[string]string{"app": "api"},
		Annotations:     annotations,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "api", UID: "uid-rs"}},
		Finalizers:      []string{"example.com/hold"},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}},
	}
}

// TestCacheOptionsKeep pins what poolguard-webhook's cache keeps: of pods,
// what the garbage collector and the pod controller read (name, namespace,
// UID, resourceVersion, deletion, the mirror pod's static UID), a full
// Pod's spec untouched; of nodes, their identity; of everything else, all
// but managedFields. A tombstone passes as it is, and trimming twice
// changes nothing.
func TestCacheOptionsKeep(t *testing.T) {
	trimPod, trimNode, def := transforms(t)
	mirror := map[string]string{policy.AnnotationMirrorPod: "uid-static", policy.AnnotationProvenance: "{}", "cni.projectcalico.org/ipv4pools": `["p"]`}
	for _, tc := range []struct {
		name string
		obj  client.Object
		want map[string]string
	}{
		{"metadata of a mirror pod", &metav1.PartialObjectMetadata{ObjectMeta: fullMeta(mirror)}, map[string]string{policy.AnnotationMirrorPod: "uid-static"}},
		{"metadata of a pod", &metav1.PartialObjectMetadata{ObjectMeta: fullMeta(map[string]string{policy.AnnotationProvenance: "{}"})}, nil},
		{"a full pod", &corev1.Pod{ObjectMeta: fullMeta(maps.Clone(mirror)), Spec: corev1.PodSpec{NodeName: "n1"}}, map[string]string{policy.AnnotationMirrorPod: "uid-static"}},
	} {
		for range 2 { // idempotent
			out, err := trimPod(tc.obj)
			if err != nil || out != tc.obj {
				t.Fatalf("%s: %v, %T: want the object itself, trimmed in place", tc.name, err, out)
			}
		}
		m := tc.obj.(metav1.ObjectMetaAccessor).GetObjectMeta()
		if m.GetNamespace() != "web" || m.GetName() != "api-0" || m.GetUID() != "uid-api-0" || m.GetResourceVersion() != "42" || m.GetDeletionTimestamp() == nil {
			t.Errorf("%s: lost what is read: %+v", tc.name, m)
		}
		if m.GetLabels() != nil || m.GetOwnerReferences() != nil || m.GetFinalizers() != nil || m.GetManagedFields() != nil || m.GetGenerateName() != "" {
			t.Errorf("%s: kept what no reader uses: %+v", tc.name, m)
		}
		if !maps.Equal(m.GetAnnotations(), tc.want) || (tc.want == nil) != (m.GetAnnotations() == nil) {
			t.Errorf("%s: annotations %v, want %v", tc.name, m.GetAnnotations(), tc.want)
		}
		if p, ok := tc.obj.(*corev1.Pod); ok && p.Spec.NodeName != "n1" {
			t.Errorf("%s: spec changed: %+v", tc.name, p.Spec)
		}
	}
	node := &metav1.PartialObjectMetadata{ObjectMeta: fullMeta(map[string]string{"node.alpha.kubernetes.io/ttl": "0"})}
	if _, err := trimNode(node); err != nil {
		t.Fatal(err)
	}
	if node.Name != "api-0" || node.UID != "uid-api-0" || node.ResourceVersion != "42" || node.Labels != nil || node.Annotations != nil || node.ManagedFields != nil || node.OwnerReferences != nil {
		t.Errorf("node trimmed to %+v", node.ObjectMeta)
	}
	claim := &v1alpha1.IPAMClaim{ObjectMeta: fullMeta(map[string]string{"a": "b"})}
	if _, err := def(claim); err != nil {
		t.Fatal(err)
	}
	if claim.ManagedFields != nil || claim.Labels["app"] != "api" || claim.Annotations["a"] != "b" || claim.Finalizers == nil {
		t.Errorf("default transform: %+v, want all but managedFields", claim.ObjectMeta)
	}
	tomb := toolscache.DeletedFinalStateUnknown{Key: "web/api-0"}
	if out, err := trimPod(tomb); err != nil || out != any(tomb) {
		t.Errorf("tombstone: %v %v", out, err)
	}
}

// TestCollectorLeanCache: the collector reads poolguard-webhook's cache,
// built with CacheOptions, from its informers' stores: pods trimmed to
// what it reads keep a static pod's address (its mirror pod's annotation
// survives the trim), free a gone pod's, and the objects it read are the
// cache's, trimmed, and untouched by the sweep.
func TestCollectorLeanCache(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scheme, err := harness.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	o := controller.CacheOptions()
	o.Scheme = scheme
	c, err := cache.New(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()

	p := mkPool(t, "lean-pool", "198.18.203.0/28")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "lean-node", Labels: map[string]string{"zone": "a"}}}
	if err := kc.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	const staticUID = "8d1f0c3a9e2b4c7d8e9f0a1b2c3d4e5f"
	mirror := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "lean-static-lean-node", Labels: map[string]string{"tier": "control-plane"},
		Annotations: map[string]string{policy.AnnotationMirrorPod: staticUID, "note": "big"}},
		Spec: corev1.PodSpec{NodeName: "lean-node", Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	live := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "lean-live", Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	for _, pod := range []*corev1.Pod{mirror, live} {
		if err := kc.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	st := kubestore.Store{Client: lean, History: true}
	a := &allocator.Allocator{Store: st, Node: "lean-node"}
	static := assign(t, a, p, "lean-static", allocator.PodRef{Namespace: "default", Name: mirror.Name, UID: staticUID})
	keep := assign(t, a, p, "lean-live", allocator.PodRef{Namespace: "default", Name: "lean-live", UID: string(live.UID)})
	gone := assign(t, a, p, "lean-gone", allocator.PodRef{Namespace: "default", Name: "lean-gone", UID: "3c0e7e2c-0000-0000-0000-000000000000"})

	// Wait until the cache holds them all.
	cachedPod := func(name string) (*metav1.PartialObjectMetadata, error) {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
		return m, c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, m)
	}
	eventually(t, "the cache holds the pods and claims", func() (bool, string) {
		var claims v1alpha1.IPAMClaimList
		if err := c.List(ctx, &claims); err != nil {
			return false, err.Error()
		}
		_, err1 := cachedPod(mirror.Name)
		_, err2 := cachedPod(live.Name)
		found := 0
		for _, o := range claims.Items {
			if o.Name == static.ID || o.Name == keep.ID || o.Name == gone.ID {
				found++
			}
		}
		return err1 == nil && err2 == nil && found == 3, fmt.Sprintf("pods: %v %v; %d of 3 claims", err1, err2, found)
	})
	m, err := cachedPod(mirror.Name)
	if err != nil {
		t.Fatal(err)
	}
	if m.Labels != nil || m.ManagedFields != nil || len(m.Annotations) != 1 || m.Annotations[policy.AnnotationMirrorPod] != staticUID || m.UID != mirror.UID {
		t.Fatalf("the cached mirror pod is not trimmed to what is read: %+v", m.ObjectMeta)
	}
	var claim v1alpha1.IPAMClaim
	if err := c.Get(ctx, client.ObjectKey{Name: keep.ID}, &claim); err != nil || claim.ManagedFields != nil || len(claim.Labels) == 0 || len(claim.Finalizers) == 0 {
		t.Fatalf("the cached claim: %v, %+v: want its labels and finalizer, without managedFields", err, claim.ObjectMeta)
	}

	gc := &controller.Collector{Reader: c, Live: kc, Store: st, GracePeriod: 0, Log: testr.New(t)}
	rep, err := gc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ClaimsReleased < 1 {
		t.Fatalf("sweep %+v: the gone pod's claim was not released", rep)
	}
	gcClaim := func(id string) error { _, err := st.GetClaim(ctx, id); return err }
	if err := gcClaim(static.ID); err != nil {
		t.Errorf("the static pod's claim was freed: %v", err)
	}
	if err := gcClaim(keep.ID); err != nil {
		t.Errorf("the live pod's claim was freed: %v", err)
	}
	// Released: gone, or held for the history recorder (not running here).
	var released v1alpha1.IPAMClaim
	if err := kc.Get(ctx, client.ObjectKey{Name: gone.ID}, &released); err == nil && released.DeletionTimestamp == nil {
		t.Errorf("the gone pod's claim is still live")
	}
	// The sweep changed nothing in the cache.
	after, err := cachedPod(mirror.Name)
	if err != nil || after != nil && (after.ResourceVersion != m.ResourceVersion || len(after.Annotations) != 1) {
		t.Errorf("the cached mirror pod after the sweep: %v %+v", err, after)
	}
	var cachedNode metav1.PartialObjectMetadata
	cachedNode.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	if err := c.Get(ctx, client.ObjectKey{Name: "lean-node"}, &cachedNode); err != nil || cachedNode.Labels != nil || cachedNode.ManagedFields != nil {
		t.Errorf("the cached node: %v %+v: want its name only", err, cachedNode.ObjectMeta)
	}
	// The pods and the node stay: deleted, they would leave other tests'
	// sweeps garbage to count.
}
