package scale

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestShape checks the address plan: every pool's range is distinct and
// inside the benchmark ranges, every namespace names pools that exist and
// admit it, and Validate refuses a shape whose team pools would run out.
func TestShape(t *testing.T) {
	for _, s := range []Shape{Small, Full, {Nodes: 20, Namespaces: 40, Pools: 8, Pods: 400}} {
		if err := s.Validate(); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		seen := map[netip.Prefix]string{}
		names := map[string]*apiv1alpha1.IPPool{}
		for i := 0; i < s.Pools; i++ {
			p := s.Pool(i)
			cidr := netip.MustParsePrefix(p.Spec.CIDR)
			if other, dup := seen[cidr]; dup {
				t.Fatalf("%+v: pools %s and %s share %s", s, other, p.Name, cidr)
			}
			seen[cidr] = p.Name
			if !v4Space.Contains(cidr.Addr()) && !netip.MustParsePrefix("2001:db8::/32").Contains(cidr.Addr()) {
				t.Fatalf("%s: %s is outside the benchmark ranges", p.Name, cidr)
			}
			names[p.Name] = p
		}
		kinds := map[int]int{}
		for i := 0; i < s.Namespaces; i++ {
			ns := s.Namespace(i)
			kinds[len(ns.Annotations)]++
			for _, fam := range policy.Families {
				v, ok := ns.Annotations[fam.AnnotationKey()]
				if !ok {
					continue
				}
				var list []string
				if err := json.Unmarshal([]byte(v), &list); err != nil || len(list) != 1 || names[list[0]] == nil {
					t.Fatalf("%s: %s=%s names no pool of the shape", ns.Name, fam.AnnotationKey(), v)
				}
				for k, want := range names[list[0]].Spec.NamespaceSelector.MatchLabels {
					if ns.Labels[k] != want {
						t.Fatalf("%s: pool %s selects %s=%s, the namespace has %q", ns.Name, list[0], k, want, ns.Labels[k])
					}
				}
			}
		}
		if kinds[0] == 0 || kinds[1] == 0 || kinds[2] == 0 {
			t.Fatalf("%+v: the namespaces lack the mix of defaults (none/one/both): %v", s, kinds)
		}
	}
	if err := (Shape{Nodes: 10, Namespaces: 10, Pools: 4, Pods: 5000}).Validate(); err == nil {
		t.Fatal("a shape with 2,500 IPv4 pods per /24 pool was accepted")
	}
}

// TestScaleHarness runs the whole harness at a tiny size, so that `make
// test` keeps it working, and checks that what it builds is what it
// claims: one claim per pod, every address from a pool the pod's
// namespace names (or the Automatic pool), and every measure taken.
func TestScaleHarness(t *testing.T) {
	shape := Shape{Nodes: 20, Namespaces: 40, Pools: 8, Pods: 400}
	var claims v1alpha1.IPAMClaimList
	var nss corev1.NamespaceList
	pop, empty, full := run(t, shape, 50, 5, 5*time.Second, func(cl client.Client) {
		if err := cl.List(context.Background(), &claims); err != nil {
			t.Fatal(err)
		}
		if err := cl.List(context.Background(), &nss); err != nil {
			t.Fatal(err)
		}
	})
	if pop.Claims != shape.Pods || pop.Blocks == 0 {
		t.Fatalf("%d claims and %d blocks for %d pods", pop.Claims, pop.Blocks, shape.Pods)
	}
	for _, m := range []*Measures{empty, full} {
		for what, v := range map[string]float64{
			"admission p50": float64(m.AdmitP50), "freeze µs": m.MutateUS, "validate µs": m.ValidateUS,
			"ADD p50": float64(m.AddP50), "index rebuild": float64(m.IndexRebuild), "sweep": float64(m.Sweep),
			"sweep allocations": float64(m.SweepAllocs), "status": float64(m.Status), "drift -n": float64(m.DriftNamespace),
			"drift -A": float64(m.DriftAll), "who-had": float64(m.WhoHad), "follower RSS": float64(m.FollowerRSS),
			"leader RSS": float64(m.LeaderRSS), "etcd claims": float64(m.Etcd["ipamclaims"]),
			"bare create p50": float64(m.BareP50), "GET pod": float64(m.GetPod), "list IPPools": float64(m.ListPools),
			"API server RSS": float64(m.APIServerRSS), "etcd RSS": float64(m.EtcdRSS),
		} {
			if v <= 0 {
				t.Errorf("%s: %s was not measured", m.Phase, what)
			}
		}
	}
	if full.StatusPopulation <= 0 || full.Etcd["ipamclaims"] <= empty.Etcd["ipamclaims"] || full.EtcdPods <= empty.EtcdPods {
		t.Errorf("the full phase did not see the population: %+v", full)
	}

	namespaces := map[string]corev1.Namespace{}
	for _, ns := range nss.Items {
		namespaces[ns.Name] = ns
	}
	cidrs := map[string]netip.Prefix{}
	for i := 0; i < shape.Pools; i++ {
		p := shape.Pool(i)
		cidrs[p.Name] = netip.MustParsePrefix(p.Spec.CIDR)
	}
	checked := 0
	for _, cl := range claims.Items {
		if !strings.HasPrefix(cl.Spec.Pod.Namespace, namePrefix+"ns-") {
			continue
		}
		ns := namespaces[cl.Spec.Pod.Namespace]
		want := map[string]bool{}
		for _, fam := range policy.Families {
			var list []string
			if v, ok := ns.Annotations[fam.AnnotationKey()]; ok {
				_ = json.Unmarshal([]byte(v), &list)
			} else if fam == policy.IPv6 {
				list = []string{generalV6Name}
			}
			for _, p := range list {
				want[p] = true
			}
		}
		if len(cl.Spec.Addresses) == 0 {
			t.Errorf("claim %s of %s/%s holds no address", cl.Name, cl.Spec.Pod.Namespace, cl.Spec.Pod.Name)
		}
		for _, a := range cl.Spec.Addresses {
			addr := netip.MustParseAddr(a.Address)
			if !want[a.Pool] || !cidrs[a.Pool].Contains(addr) {
				t.Errorf("claim of %s/%s: %s from pool %s; its namespace's pools are %v", cl.Spec.Pod.Namespace, cl.Spec.Pod.Name, addr, a.Pool, want)
			}
		}
		checked++
	}
	if checked != shape.Pods {
		t.Errorf("%d population claims, want %d", checked, shape.Pods)
	}
}
