package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// blocksOnly lists the given blocks, and no claims, pods or nodes.
type blocksOnly struct {
	client.Reader
	blocks []v1alpha1.IPAMBlock
}

func (r *blocksOnly) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	if l, ok := list.(*v1alpha1.IPAMBlockList); ok {
		l.Items = append([]v1alpha1.IPAMBlock(nil), r.blocks...)
	}
	return nil
}

// TestSweepChecksBlocks: a sweep checks a block as kubestore.BlockFromAPI
// does whenever its resourceVersion is new to it, and reports a bad one at
// every sweep; an unchanged block is not converted again; a block gone
// from the cache is forgotten.
func TestSweepChecksBlocks(t *testing.T) {
	good := v1alpha1.IPAMBlock{
		ObjectMeta: metav1.ObjectMeta{Name: "198-18-205-0-28", ResourceVersion: "1"},
		Spec: v1alpha1.IPAMBlockSpec{CIDR: "198.18.205.0/28", PoolCIDR: "198.18.205.0/24", Pool: "p", Node: "n", NextSeq: 1,
			Allocations: []v1alpha1.BlockAllocation{{Slot: 3, Claim: "c-1", Seq: 1}}},
	}
	bad := *good.DeepCopy()
	bad.ResourceVersion = "2"
	bad.Spec.Allocations[0].Seq = 9 // beyond nextSeq
	r := &blocksOnly{}
	gc := &Collector{Reader: r, GracePeriod: time.Hour, Log: logr.Discard()}
	sweep := func() error {
		t.Helper()
		_, err := gc.Sweep(context.Background())
		return err
	}
	r.blocks = []v1alpha1.IPAMBlock{good}
	if err := sweep(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r.blocks = []v1alpha1.IPAMBlock{bad}
		if err := sweep(); !errors.Is(err, allocator.ErrInvalidState) {
			t.Fatalf("sweep %d of a block changed to a bad one: %v, want ErrInvalidState", i, err)
		}
	}
	// The same resourceVersion is the same object: a copy changed behind
	// the cache's back is not converted again (what the cache holds at a
	// resourceVersion never changes).
	r.blocks = []v1alpha1.IPAMBlock{good}
	if err := sweep(); err != nil {
		t.Fatal(err)
	}
	sameVersion := *bad.DeepCopy()
	sameVersion.ResourceVersion = good.ResourceVersion
	r.blocks = []v1alpha1.IPAMBlock{sameVersion}
	if err := sweep(); err != nil {
		t.Fatalf("a block at a resourceVersion already checked was converted again: %v", err)
	}
	if len(gc.checked) != 1 {
		t.Fatalf("checked blocks: %v", gc.checked)
	}
	r.blocks = nil
	if err := sweep(); err != nil || len(gc.checked) != 0 {
		t.Fatalf("a block gone from the cache is still remembered: %v %v", gc.checked, err)
	}
}
