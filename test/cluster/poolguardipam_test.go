package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	allocv1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// generalPool is the pool poolguard-ipam draws from: unrestricted and
// Automatic, what a pod without poolguard's provenance gets.
var generalPool = netip.MustParsePrefix("198.51.100.0/24")

// TestPoolguardIPAMOnNode runs poolguard-ipam, built from this checkout,
// as the node's IPAM plugin behind the bridge: the kubelet's pod gets its
// address from an IPPool, recorded as an IPAMClaim, released on delete.
func TestPoolguardIPAMOnNode(t *testing.T) {
	pluginDir := t.TempDir()
	if err := netlab.BuildPlugin(pluginDir); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, cluster.Config{
		ExtraRanges: []netip.Prefix{generalPool},
		IPAM:        cluster.PoolguardIPAM,
		Plugins:     map[string]string{"poolguard-ipam": pluginDir + "/poolguard-ipam"},
	})
	if err := c.InstallPoolguardCRDs(); err != nil {
		t.Fatal(err)
	}
	cl, err := harness.Client(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pool := &apiv1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "general"},
		Spec:       apiv1alpha1.IPPoolSpec{CIDR: generalPool.String(), AssignmentMode: apiv1alpha1.AssignmentAutomatic},
	}
	if err := cl.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	runPod(t, c, "pooled", generalPool, func(ip netip.Addr) (bool, error) {
		var claims allocv1alpha1.IPAMClaimList
		if err := cl.List(ctx, &claims); err != nil {
			return true, err
		}
		var seen []string
		for _, cl := range claims.Items {
			for _, a := range cl.Spec.Addresses {
				seen = append(seen, fmt.Sprintf("%s/%s: %s from %s", cl.Spec.Pod.Namespace, cl.Spec.Pod.Name, a.Address, a.Pool))
				if cl.Spec.Pod.Name == "pooled" && cl.Spec.Node == c.NodeName && a.Pool == pool.Name && a.Address == ip.String() {
					return true, nil
				}
			}
		}
		return false, fmt.Errorf("claims: %v", seen)
	})
}
