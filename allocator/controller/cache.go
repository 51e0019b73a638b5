package controller

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/policy"
)

// CacheOptions are the informer cache options of poolguard-webhook's
// manager, which the allocator's controllers share with admission and the
// live export. The leader caches every pod and node of the cluster, so what
// it keeps of each is what its memory grows with; it keeps only what some
// reader of the cache uses:
//
//   - every object without its managedFields (nothing here reads them,
//     and the writes that follow a cached read are patches, which carry
//     none);
//   - pods (read as metadata, by the garbage collector and the pod
//     controller only) with their name, namespace, UID, resourceVersion,
//     deletion timestamp and the one annotation policy.IsThePod reads (a
//     mirror pod's static UID): TrimPod;
//   - nodes (read as metadata, by the garbage collector only: does the
//     node of a block still exist?) with their name, UID and
//     resourceVersion: TrimNode. Admission reads a node's labels live
//     (webhook.Lookup.NodeLabels), never from here.
//
// A reader that needs more of a pod or a node (a label, another
// annotation) must add it here first: from the cache it would silently
// read nothing. TestCacheOptionsKeep pins what is kept.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			// A type's own transform replaces the default one: both
			// strip managedFields too.
			&corev1.Pod{}:  {Transform: TrimPod},
			&corev1.Node{}: {Transform: TrimNode},
		},
	}
}

// TrimPod is the cache's transform of pods: metadata only what CacheOptions
// says is read, the rest of a full Pod object untouched. Anything but an
// object (a tombstone) passes as it is.
func TrimPod(in any) (any, error) {
	o, ok := in.(metav1.Object)
	if !ok {
		return in, nil
	}
	trimMetadata(o)
	var keep map[string]string
	if uid, ok := o.GetAnnotations()[policy.AnnotationMirrorPod]; ok {
		keep = map[string]string{policy.AnnotationMirrorPod: uid}
	}
	o.SetAnnotations(keep)
	return in, nil
}

// TrimNode is the cache's transform of nodes: see CacheOptions.
func TrimNode(in any) (any, error) {
	o, ok := in.(metav1.Object)
	if !ok {
		return in, nil
	}
	trimMetadata(o)
	o.SetAnnotations(nil)
	return in, nil
}

// trimMetadata drops what no cached reader of a pod or node uses, and
// what sizes its metadata: managedFields, labels, owners, finalizers.
func trimMetadata(o metav1.Object) {
	if o.GetManagedFields() != nil {
		// Checked first, as cache.TransformStripManagedFields does
		// (kubernetes/kubernetes#124337).
		o.SetManagedFields(nil)
	}
	o.SetLabels(nil)
	o.SetOwnerReferences(nil)
	o.SetFinalizers(nil)
	o.SetGenerateName("")
}
