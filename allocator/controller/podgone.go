package controller

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// ClaimPodField is the cache index of IPAMClaims by the pod they serve,
// as PodKey: a pod's deletion finds its claims without a list of every
// claim.
const ClaimPodField = "spec.pod.key"

// PodKey is a pod's value in the ClaimPodField index.
func PodKey(namespace, name string) string { return namespace + "/" + name }

// indexClaimPod is the ClaimPodField index function.
func indexClaimPod(o client.Object) []string {
	c, ok := o.(*v1alpha1.IPAMClaim)
	if !ok {
		return nil
	}
	return []string{PodKey(c.Spec.Pod.Namespace, c.Spec.Pod.Name)}
}

// PodGone frees the addresses of a deleted pod soon after it goes, instead
// of at the next full sweep: a pod's deletion enqueues the claims that name
// it, and each is decided as the sweep decides it. A claim whose pod is
// alive (policy.IsThePod) is left alone; one being released is the history
// recorder's; any other is a suspect, requeued for what is left of the
// grace period, then freed by the collector's releaseClaim, which reads
// the claim and the pod again live and frees with the sequence numbers.
// The suspects are the collector's own, so a claim both see waits the
// grace period once.
//
// The full sweep stays the safety net for what no pod deletion announces:
// claims whose pod went while no leader watched, or before the claim was
// written; slots of killed ADDs; empty blocks of deleted nodes.
type PodGone struct {
	// Reader reads claims (indexed by ClaimPodField) and pods (as
	// metadata) from the cache, without copies: read only.
	Reader client.Reader
	// Collector decides and frees (its grace period, clock, suspects and
	// releaseClaim).
	Collector *Collector
}

// Reconcile implements reconcile.Reconciler for one IPAMClaim.
func (r *PodGone) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var o v1alpha1.IPAMClaim
	if err := r.Reader.Get(ctx, req.NamespacedName, &o, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if o.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // released: the history recorder's
	}
	gc := r.Collector
	key := claimCandidate(&o)
	pod := metadataObject(podGVK)
	err := r.Reader.Get(ctx, types.NamespacedName{Namespace: o.Spec.Pod.Namespace, Name: o.Spec.Pod.Name}, pod, client.UnsafeDisableDeepCopy)
	switch {
	case err == nil && servesPod(pod, o.Spec.Pod):
		gc.suspects.forget(key)
		return ctrl.Result{}, nil
	case err != nil && !apierrors.IsNotFound(err):
		return ctrl.Result{}, err
	}
	if left := gc.suspects.wait(key, gc.now(), gc.GracePeriod); left > 0 {
		return ctrl.Result{RequeueAfter: left}, nil
	}
	freed, err := gc.releaseClaim(ctx, &o)
	if err != nil {
		return ctrl.Result{}, err
	}
	if freed {
		freedTotal.WithLabelValues(kindClaim, triggerPodDeleted).Inc()
	}
	return ctrl.Result{}, nil
}

// claimsOfPod maps a pod's event to the claims that name it.
func (r *PodGone) claimsOfPod(ctx context.Context, pod client.Object) []ctrl.Request {
	var claims v1alpha1.IPAMClaimList
	if err := r.Reader.List(ctx, &claims, client.MatchingFields{ClaimPodField: PodKey(pod.GetNamespace(), pod.GetName())}, client.UnsafeDisableDeepCopy); err != nil {
		// The cache is indexed at setup: this does not happen; the
		// sweep would find the claims anyway.
		r.Collector.Log.Error(err, "listing the claims of a deleted pod", "pod", PodKey(pod.GetNamespace(), pod.GetName()))
		return nil
	}
	out := make([]ctrl.Request, 0, len(claims.Items))
	for i := range claims.Items {
		out = append(out, ctrl.Request{NamespacedName: types.NamespacedName{Name: claims.Items[i].Name}})
	}
	return out
}

// podDeleted lets only pod deletions through: a pod's creation or update
// never makes its claims garbage.
var podDeleted = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	UpdateFunc:  func(event.UpdateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
