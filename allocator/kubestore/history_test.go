package kubestore_test

import (
	"context"
	"errors"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// TestClaimForTheHistory: with History, a claim is created with the
// history finalizer and the shard labels of its addresses, in its one
// POST; once deleted it reads back as Released (its slots freed, waiting
// for the recorder), which an Assign of the same attachment refuses as
// busy rather than returning as the attachment's.
func TestClaimForTheHistory(t *testing.T) {
	st, c := newStore(t)
	st.History = true
	ctx := context.Background()
	p := createPool(t, c, "history-pool", "198.18.120.0/28", 28)
	a := &allocator.Allocator{Store: st, Node: "n"}
	req := allocator.Request{ContainerID: "hist", IfName: "eth0", Pod: allocator.PodRef{Namespace: "ns", Name: "p"}, Wants: []allocator.Want{{Ranges: []allocator.Range{p}}}}
	cl, err := a.Assign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var o v1alpha1.IPAMClaim
	if err := c.Get(ctx, client.ObjectKey{Name: cl.ID}, &o); err != nil {
		t.Fatal(err)
	}
	if !controllerutil.ContainsFinalizer(&o, v1alpha1.FinalizerHistory) || o.Labels[v1alpha1.LabelClaimShardIPv4] != "c6127800-24" || len(o.Labels) != 1 {
		t.Errorf("claim %s: finalizers %v labels %v", cl.Addresses[0].Addr, o.Finalizers, o.Labels)
	}
	if err := a.Release(ctx, "", "hist", "eth0"); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetClaim(ctx, cl.ID)
	if err != nil || !got.Released {
		t.Fatalf("a deleted claim held by the finalizer: %+v %v, want Released", got, err)
	}
	if b, _ := st.GetBlock(ctx, cl.Addresses[0].Block); len(b.Slots) != 0 {
		t.Errorf("slots still held after the release: %v", b.Slots)
	}
	if _, err := a.Assign(ctx, req); !errors.Is(err, allocator.ErrReleasing) {
		t.Errorf("ADD of the released attachment: %v, want ErrReleasing", err)
	}
	// A second DEL is still fine (idempotent).
	if err := a.Release(ctx, "", "hist", "eth0"); err != nil {
		t.Errorf("repeated DEL: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: cl.ID}, &o); err != nil {
		t.Fatal(err)
	}
	controllerutil.RemoveFinalizer(&o, v1alpha1.FinalizerHistory)
	if err := c.Update(ctx, &o); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Assign(ctx, req); err != nil {
		t.Errorf("ADD once the release is recorded: %v", err)
	}
}
