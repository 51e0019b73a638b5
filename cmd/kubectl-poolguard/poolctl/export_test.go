package poolctl_test

import (
	"context"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
)

// exportClaim is an IPAMClaim of pod name in namespace ns.
func exportClaim(name, ns string, addrs ...storev1alpha1.ClaimAddress) *storev1alpha1.IPAMClaim {
	return &storev1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "export-" + name},
		Spec: storev1alpha1.IPAMClaimSpec{
			ContainerID: "c-" + name, IfName: "eth0", Node: "node-1",
			Pod:       storev1alpha1.PodReference{Namespace: ns, Name: name},
			Addresses: addrs,
		},
	}
}

func claimAddr(pool, cidr, block, ip string) storev1alpha1.ClaimAddress {
	return storev1alpha1.ClaimAddress{Pool: pool, PoolCIDR: cidr, Block: block, Address: ip, Seq: 1}
}

// TestExport: kubectl poolguard export against real IPPools and
// IPAMClaims: a namespace's addresses (a claim being deleted left out),
// narrowed to a pool and a family, as text, nft and JSON; a pool's; the
// CIDRs; the errors that say what to do; and a user bound to the chart's
// viewer ClusterRole may run it.
func TestExport(t *testing.T) {
	kc := setUp(t)
	ctx := context.Background()
	c := storeClient(t)
	trusted := func(ip string) storev1alpha1.ClaimAddress {
		return claimAddr("trusted", "203.0.113.0/25", "203.0.113.64/26", ip)
	}
	for _, cl := range []*storev1alpha1.IPAMClaim{
		exportClaim("fw-a", "firewalled", trusted("203.0.113.100"), claimAddr("v6", "2001:db8::/64", "2001:db8::/122", "2001:db8::100")),
		exportClaim("fw-b", "firewalled", claimAddr("general", "198.51.100.0/25", "198.51.100.64/26", "198.51.100.100")),
		exportClaim("other", "elsewhere", trusted("203.0.113.101")),
	} {
		if err := c.Create(ctx, cl); err != nil {
			t.Fatal(err)
		}
	}
	// Released, its history being recorded: not in use.
	held := exportClaim("fw-gone", "firewalled", trusted("203.0.113.102"))
	held.Finalizers = []string{"test.poolguard.dev/hold"}
	if err := c.Create(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, held); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var o storev1alpha1.IPAMClaim
		if err := c.Get(ctx, client.ObjectKeyFromObject(held), &o); err == nil {
			o.Finalizers = nil
			_ = c.Update(ctx, &o)
		}
	})

	exact := func(args []string, want string) {
		t.Helper()
		code, out, _ := run(t, kc, "", args...)
		if code != poolctl.ExitOK || out != want {
			t.Errorf("%q: exit %d, output\n%s\nwant\n%s", args, code, out, want)
		}
	}
	exact([]string{"export", "-n", "firewalled"}, "198.51.100.100\n203.0.113.100\n2001:db8::100\n")
	exact([]string{"export", "-n", "firewalled", "--pool", "trusted"}, "203.0.113.100\n")
	exact([]string{"export", "-n", "firewalled", "--family", "6"}, "2001:db8::100\n")
	exact([]string{"export", "-n", "nobody-here"}, "")
	exact([]string{"export", "-n", "firewalled", "--family", "4", "-o", "nft", "--nft-table", "fw", "--nft-set", "payments"},
		"#!/usr/sbin/nft -f\n# poolguard export: the addresses of the pods of namespace firewalled, IPv4 only\nadd table inet fw\n"+
			"add set inet fw payments_v4 { type ipv4_addr; flags interval; auto-merge; }\nflush set inet fw payments_v4\n"+
			"add element inet fw payments_v4 { 198.51.100.100, 203.0.113.100 }\n")

	code, out, _ := run(t, kc, "", "export", "--pool", "trusted")
	if code != poolctl.ExitOK || !strings.Contains(out, "203.0.113.100\n203.0.113.101\n") || strings.Contains(out, "203.0.113.102") || strings.Contains(out, "198.51.100.100") {
		t.Errorf("export --pool trusted: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, kc, "", "export", "--cidrs")
	if code != poolctl.ExitOK || !strings.Contains(out, "198.51.100.0/25\n203.0.113.0/25\n2001:db8::/64\n") {
		t.Errorf("export --cidrs: exit %d\n%s", code, out)
	}
	exact([]string{"export", "--cidrs", "--pool", "v6"}, "2001:db8::/64\n")
	code, out, _ = run(t, kc, "", "export", "-n", "firewalled", "-o", "json")
	if code != poolctl.ExitOK || !strings.Contains(out, `{"address":"203.0.113.100","pool":"trusted","namespace":"firewalled","pod":"fw-a"}`) {
		t.Errorf("export -o json: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--pool", "nope"}, `unknown pool "nope" (kubectl get ippools lists them)`},
		{[]string{"export", "-n", "firewalled", "--family", "7"}, `family "7"`},
		{[]string{"export", "-n", "firewalled", "-o", "yaml"}, "want text, nft or json"},
		{[]string{"export", "-n", "firewalled", "--nft-set", "x"}, "are for -o nft"},
		{[]string{"export", "-n", "firewalled", "-o", "nft", "--nft-set", "x; flush ruleset"}, `nft set "x; flush ruleset_v4"`},
		{[]string{"export", "--cidrs", "--mode", "calico"}, "is Calico installed?"},
	} {
		code, _, errOut := run(t, kc, "", tc.args...)
		if code != poolctl.ExitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}

	// Access: told which ClusterRole to bind; the chart's viewer covers it.
	ukc, err := userKubeconfig(controlPlane(t), "exporter")
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, ukc, "", "export", "-n", "firewalled")
	if code != poolctl.ExitError || !strings.Contains(errOut, "--clusterrole=poolguard-viewer") {
		t.Errorf("without RBAC: exit %d, stderr %q", code, errOut)
	}
	role := chartClusterRole(t, "poolguard-viewer")
	if err := c.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "poolguard-viewer-exporter"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "exporter"}},
	}
	if err := c.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for code, out, _ = run(t, ukc, "", "export", "-n", "firewalled"); code == poolctl.ExitError && time.Now().Before(deadline); code, out, _ = run(t, ukc, "", "export", "-n", "firewalled") {
		time.Sleep(200 * time.Millisecond)
	}
	if code != poolctl.ExitOK || out != "198.51.100.100\n203.0.113.100\n2001:db8::100\n" {
		t.Errorf("export as a viewer: exit %d\n%s", code, out)
	}
}

// chartClusterRole renders the chart (release poolguard) and returns one
// of its ClusterRoles.
func chartClusterRole(t *testing.T, name string) *rbacv1.ClusterRole {
	t.Helper()
	role, err := charts.Helm{}.ClusterRole(charts.Release{Name: "poolguard", Namespace: "poolguard-system"}, name)
	if err != nil {
		t.Fatal(err)
	}
	return role
}
