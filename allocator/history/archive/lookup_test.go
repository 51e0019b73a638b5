package archive

import (
	"context"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// TestWhoHadRecordedMeanwhile: a release the recorder files while who-had
// reads (its records written, its claim let go, between who-had's two
// lists) is still answered, once.
func TestWhoHadRecordedMeanwhile(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("198.51.100.7")
	claim := &v1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "c1", Finalizers: []string{v1alpha1.FinalizerHistory},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)),
			Labels:            map[string]string{v1alpha1.LabelClaimShardIPv4: history.ShardLabel(history.ShardOf(addr))}},
		Spec: v1alpha1.IPAMClaimSpec{ContainerID: "cid", IfName: "eth0", Node: "n1", Pod: v1alpha1.PodReference{Namespace: "payments", Name: "api-0"},
			Addresses: []v1alpha1.ClaimAddress{{Pool: "p", PoolCIDR: "198.51.100.0/24", Block: "198.51.100.0/26", Address: addr.String(), Seq: 1}}},
	}
	store := fake.NewClientBuilder().WithScheme(scheme).WithObjects(claim).Build()
	if err := store.Delete(ctx, claim); err != nil {
		t.Fatal(err)
	}
	// The recorder, which runs right after who-had's first list.
	record := func() {
		var c v1alpha1.IPAMClaim
		if err := store.Get(ctx, client.ObjectKeyFromObject(claim), &c); err != nil {
			t.Fatal(err)
		}
		if err := (Archive{Client: store, Live: store}).Append(ctx, RecordsOf(&c)); err != nil {
			t.Fatal(err)
		}
		controllerutil.RemoveFinalizer(&c, v1alpha1.FinalizerHistory)
		if err := store.Update(ctx, &c); err != nil {
			t.Fatal(err)
		}
	}
	lists := 0
	r := interceptor.NewClient(store, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, opts ...client.ListOption) error {
		err := c.List(ctx, l, opts...)
		if lists++; lists == 1 {
			record()
		}
		return err
	}})
	got, err := WhoHad(ctx, r, addr, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pod != "api-0" || got[0].Open() {
		t.Fatalf("who had %s: %+v, want api-0's released allocation once", addr, got)
	}
	if err := store.Get(ctx, client.ObjectKeyFromObject(claim), &v1alpha1.IPAMClaim{}); err == nil {
		t.Fatal("the recorder did not let the claim go: the test proves nothing")
	}
}
