package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

// TestIPPoolCEL proves that the IPPool CRD alone, with no poolguard webhook
// registered, makes the API server refuse malformed pools with a message
// that says what is wrong, and accept good ones: the rules that must hold
// while the webhook is down (SPEC §8). The block size bounds come from
// policy's constants, so the CRD's rule and the webhook's cannot drift.
func TestIPPoolCEL(t *testing.T) {
	env, err := harness.Start(harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	ctx := context.Background()
	c := env.Client
	pool := func(name, cidr string, block int) *v1alpha1.IPPool {
		return &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPPoolSpec{CIDR: cidr, BlockSize: int32(block)}}
	}

	bad := []struct {
		name string
		p    *v1alpha1.IPPool
		want []string // all of these in the API server's error
	}{
		{"not a CIDR", pool("no-prefix", "198.51.100.0", 0), []string{"spec.cidr", `cidr "198.51.100.0" is not a CIDR`}},
		{"garbage", pool("garbage", "pool-one", 0), []string{"spec.cidr", "is not a CIDR"}},
		{"prefix too long", pool("too-long", "198.51.100.0/33", 0), []string{"spec.cidr", "is not a CIDR"}},
		{"leading zeros", pool("zeros", "198.051.100.0/24", 0), []string{"spec.cidr", "is not a CIDR"}},
		{"IPv4-mapped IPv6", pool("mapped", "::ffff:198.51.100.0/120", 0), []string{"spec.cidr", "is not a CIDR", "IPv4-mapped"}},
		{"v4 host bits", pool("host-bits", "198.51.100.7/24", 0), []string{"spec.cidr", `cidr "198.51.100.7/24" has host bits set`}},
		{"v6 host bits", pool("host-bits-v6", "2001:db8::1/64", 0), []string{"spec.cidr", `cidr "2001:db8::1/64" has host bits set`}},
		{"v4 block below range", pool("v4-small", "198.18.0.0/16", policy.MinBlockSizeV4-1), []string{"spec.blockSize", fmt.Sprintf("blockSize is out of range for IPv4 pools (%d to %d)", policy.MinBlockSizeV4, policy.MaxBlockSizeV4)}},
		{"v4 block above range", pool("v4-big", "198.18.0.0/16", policy.MaxBlockSizeV4+1), []string{"spec.blockSize", "blockSize is out of range for IPv4 pools"}},
		{"v6 block below range", pool("v6-small", "2001:db8::/48", policy.MinBlockSizeV6-1), []string{"spec.blockSize", fmt.Sprintf("blockSize is out of range for IPv6 pools (%d to %d)", policy.MinBlockSizeV6, policy.MaxBlockSizeV6)}},
		{"v4 block size on a v6 pool", pool("v6-v4block", "2001:db8::/48", policy.DefaultBlockSizeV4), []string{"spec.blockSize", "out of range for IPv6 pools"}},
		{"v6 block size on a v4 pool", pool("v4-v6block", "198.18.0.0/16", policy.DefaultBlockSizeV6), []string{"spec.blockSize", "out of range for IPv4 pools"}},
		{"unknown assignment mode", func() *v1alpha1.IPPool {
			p := pool("mode", "198.18.0.0/16", 0)
			p.Spec.AssignmentMode = "Sometimes"
			return p
		}(), []string{"spec.assignmentMode", "Unsupported value", `"Manual"`}},
	}
	for _, tc := range bad {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			err := c.Create(ctx, tc.p)
			if err == nil {
				t.Fatalf("the API server accepted %+v without the webhook", tc.p.Spec)
			}
			t.Log(err)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want 422 Invalid from the CRD's validation, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// No webhook means no overlap check: these overlap each other freely,
	// which shows that only the CRD decided here.
	good := []*v1alpha1.IPPool{
		pool("v4-default-block", "198.18.0.0/15", 0),
		pool("v4-min-block", "198.18.0.0/16", policy.MinBlockSizeV4),
		pool("v4-max-block", "198.51.100.0/24", policy.MaxBlockSizeV4),
		pool("v4-single-address", "203.0.113.9/32", 0),
		pool("v6-min-block", "2001:db8::/32", policy.MinBlockSizeV6),
		pool("v6-max-block", "2001:db8:1::/48", policy.MaxBlockSizeV6),
		// The webhook respells it canonically; the CRD only asks for no host bits.
		pool("v6-other-spelling", "2001:DB8:2:0::/64", 0),
		{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Spec: v1alpha1.IPPoolSpec{CIDR: "203.0.113.0/24", AssignmentMode: v1alpha1.AssignmentManual}},
	}
	for _, p := range good {
		t.Cleanup(func() { _ = c.Delete(ctx, p) })
		t.Run("accepted: "+p.Name, func(t *testing.T) {
			if err := c.Create(ctx, p); err != nil {
				t.Fatalf("the API server refused a good pool %+v: %v", p.Spec, err)
			}
		})
	}

	t.Run("an update is held to the same rules", func(t *testing.T) {
		var p v1alpha1.IPPool
		if err := c.Get(ctx, client.ObjectKey{Name: "v4-max-block"}, &p); err != nil {
			t.Fatal(err)
		}
		p.Spec.CIDR = "198.51.100.1/24"
		if err := c.Update(ctx, &p); err == nil || !strings.Contains(err.Error(), "has host bits set") {
			t.Fatalf("update to a CIDR with host bits: %v", err)
		}
	})
}
