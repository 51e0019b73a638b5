package webhook_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestIPPoolValidation: canonical CIDRs, defaults, no overlaps, sane block
// sizes, no CIDR change while in use, and a deletion held while in use.
func TestIPPoolValidation(t *testing.T) {
	ctx := context.Background()
	c, warns := newClient(t)
	base := uniq(t, "p")
	p := makePool(t, base, "203.0.113.0/26", false)
	if p.Spec.BlockSize != 26 || p.Spec.AssignmentMode != v1alpha1.AssignmentAutomatic {
		t.Fatalf("defaults not applied: %+v", p.Spec)
	}
	v6 := makePool(t, base+"-v6", "2001:db8:4::/48", false)
	if v6.Spec.BlockSize != 122 {
		t.Fatalf("v6 block size default = %d", v6.Spec.BlockSize)
	}
	spelled := makePool(t, base+"-spelled", "2001:DB8:6:0::/64", false)
	if spelled.Spec.CIDR != "2001:db8:6::/64" {
		t.Fatalf("CIDR stored as %q, want the canonical 2001:db8:6::/64", spelled.Spec.CIDR)
	}
	bad := []struct {
		name, cidr string
		block      int32
		want       string
	}{
		{"host bits", "203.0.113.65/26", 0, "did you mean 203.0.113.64/26"},
		{"not a cidr", "203.0.113.0", 0, "is not a CIDR"},
		{"overlap", "203.0.113.0/24", 0, "overlaps IPPool"},
		{"overlap inside", "203.0.113.8/29", 0, "overlaps IPPool"},
		{"v6 overlap", "2001:db8:4:1::/64", 0, "overlaps IPPool"},
		{"block too big", "203.0.113.128/26", 16, "out of range"},
		{"v6 block too small", "2001:db8:5::/48", 100, "out of range"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(ctx, &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: base + "-bad"},
				Spec: v1alpha1.IPPoolSpec{CIDR: tc.cidr, BlockSize: tc.block}})
			mustContain(t, err, tc.want)
		})
	}

	t.Run("CIDR and block size frozen while in use, deletion held", func(t *testing.T) {
		// The allocator adds this finalizer before the first allocation.
		controllerutil.AddFinalizer(p, v1alpha1.FinalizerAllocations)
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Spec.CIDR = "203.0.113.64/26"
		mustContain(t, c.Update(ctx, p), "spec.cidr", "has allocated addresses")
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		p.Spec.BlockSize = 28
		mustContain(t, c.Update(ctx, p), "spec.blockSize", "has allocated addresses")
		warns.Take()
		if err := c.Delete(ctx, &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: base}}); err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(warns.Take(), "\n"); !strings.Contains(w, "deletion is held") {
			t.Fatalf("no warning that deletion is held: %q", w)
		}
		var held v1alpha1.IPPool
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), &held); err != nil || held.DeletionTimestamp == nil {
			t.Fatalf("pool in use was not held: %v %+v", err, held.ObjectMeta)
		}
		// A terminating pool refuses new users.
		nsName := uniq(t, "ns")
		makeNamespace(t, c, nsName, nil)
		var err error
		for i := 0; i < 100; i++ {
			if err = c.Create(ctx, pod(nsName, "late", map[string]string{policy.AnnotationIPv4Pools: `["` + base + `"]`}), client.DryRunAll); err != nil {
				break
			}
			sleep()
		}
		mustContain(t, err, "being deleted")
		controllerutil.RemoveFinalizer(&held, v1alpha1.FinalizerAllocations)
		if err := env.Client.Update(ctx, &held); err != nil {
			t.Fatal(err)
		}
	})
}
