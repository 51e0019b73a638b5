package controller

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// PoolField is the cache index of IPAMBlocks by pool name.
const PoolField = "spec.pool"

// ConditionDeletionHeld is the IPPool condition set while its deletion
// waits for its allocations.
const ConditionDeletionHeld = "DeletionHeld"

// PoolStatus keeps an IPPool's status (family, capacity, allocated, free)
// current from its blocks, and releases the allocations finalizer once a
// deleted pool's last address is gone (after deleting its empty blocks).
type PoolStatus struct {
	// Client reads pools and blocks (a cache with the PoolField index)
	// and writes pool status and finalizers.
	Client client.Client
	// Store deletes blocks, guarded by resourceVersion.
	Store kubestore.Store
	Log   logr.Logger
}

// Reconcile implements reconcile.Reconciler for one IPPool.
func (r *PoolStatus) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pool apiv1alpha1.IPPool
	if err := r.Client.Get(ctx, req.NamespacedName, &pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var blocks v1alpha1.IPAMBlockList
	if err := r.Client.List(ctx, &blocks, client.MatchingFields{PoolField: pool.Name}); err != nil {
		return ctrl.Result{}, err
	}
	var allocated int64
	for _, b := range blocks.Items {
		allocated += int64(len(b.Spec.Allocations))
	}
	want := pool.Status.DeepCopy()
	want.Allocated = allocated
	if cidr, err := policy.ParsePoolCIDR(pool.Spec.CIDR); err == nil {
		want.Family = policy.FamilyOf(cidr).String()
		want.Capacity = capacity(cidr)
		want.Free = want.Capacity - allocated
	}
	deleting := pool.DeletionTimestamp != nil
	if deleting && allocated > 0 {
		meta.SetStatusCondition(&want.Conditions, metav1.Condition{
			Type: ConditionDeletionHeld, Status: metav1.ConditionTrue, Reason: policy.ReasonDeletionHeld,
			Message:            fmt.Sprintf("%d addresses are still allocated; the pool is deleted once the pods holding them are gone", allocated),
			ObservedGeneration: pool.Generation,
		})
	}
	if !statusEqual(&pool.Status, want) {
		patch := client.MergeFromWithOptions(pool.DeepCopy(), client.MergeFromWithOptimisticLock{})
		pool.Status = *want
		if err := r.Client.Status().Patch(ctx, &pool, patch); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if !deleting || allocated > 0 || !controllerutil.ContainsFinalizer(&pool, apiv1alpha1.FinalizerAllocations) {
		return ctrl.Result{}, nil
	}
	// The pool is being deleted and holds nothing: remove its empty
	// blocks (each delete guarded, so an ADD that raced in wins), then
	// the finalizer.
	for i := range blocks.Items {
		b, err := kubestore.BlockFromAPI(&blocks.Items[i])
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := r.Store.DeleteBlock(ctx, b); err != nil && !errors.Is(err, allocator.ErrNotFound) {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		}
		if b.Node != "" {
			gc := &Collector{Store: r.Store}
			if err := gc.dropAffinity(ctx, b.Node, b.Pool, b.CIDR); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if len(blocks.Items) > 0 {
		// Let the cache catch up and look again before letting go.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	patch := client.MergeFromWithOptions(pool.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(&pool, apiv1alpha1.FinalizerAllocations)
	if err := r.Client.Patch(ctx, &pool, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.Log.Info("released the allocations finalizer of a deleted pool", "pool", pool.Name)
	return ctrl.Result{}, nil
}

// capacity is the pool's number of assignable addresses, capped to int64.
func capacity(cidr netip.Prefix) int64 {
	c := allocator.Range{CIDR: cidr}.Capacity()
	if c.Cmp(big.NewInt(math.MaxInt64)) > 0 {
		return math.MaxInt64
	}
	return c.Int64()
}

func statusEqual(a, b *apiv1alpha1.IPPoolStatus) bool {
	if a.Family != b.Family || a.Capacity != b.Capacity || a.Allocated != b.Allocated || a.Free != b.Free || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Message != y.Message || x.Reason != y.Reason {
			return false
		}
	}
	return true
}

// blockToPool maps a block event to its pool's reconcile request.
func blockToPool(_ context.Context, o client.Object) []ctrl.Request {
	b, ok := o.(*v1alpha1.IPAMBlock)
	if !ok || b.Spec.Pool == "" {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Name: b.Spec.Pool}}}
}
