package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/test/netlab"
)

// TestFirewallStory walks SPEC §1's story through the kernel: the payments
// namespace's default is frozen onto its pods, whose addresses (v4 and v6)
// fall in the range the legacy firewall trusts and get through it; a shop
// pod gets the default pools and is refused; a changed default moves new
// pods but not an old pod's new sandbox; a forbidden pool and a late edit
// are refused at admission; and everything is released at the end. The
// steps build on each other, so they run in order in one test.
func TestFirewallStory(t *testing.T) {
	w := newWorld(t)
	fw4, fw6 := w.lab.FirewallAddrs()

	w.pool(t, "mainframe-trusted", trustedV4, true, "payments")
	w.pool(t, "mainframe-trusted-v6", trustedV6, true, "payments")
	w.pool(t, "general", generalV4, false)
	w.pool(t, "general-v6", generalV6, false)
	w.namespace(t, "payments", map[string]string{
		v4Key: poolList("mainframe-trusted"),
		v6Key: poolList("mainframe-trusted-v6"),
	})
	w.namespace(t, "shop", nil)
	w.waitFrozen(t, "payments", v4Key, poolList("mainframe-trusted"))

	// reach asserts a connection from the sandbox to the firewall in one
	// family: through, with the pod's own address as the source the
	// firewall saw, or refused.
	reach := func(t *testing.T, s *netlab.Sandbox, v6, through bool) {
		t.Helper()
		dst := fw4
		if v6 {
			dst = fw6
		}
		src, _ := s.Addr(v6)
		seen, err := netlab.Connect(s.Netns, dst)
		switch {
		case through && err != nil:
			t.Fatalf("%s/%s (%s) -> firewall %s: %v; want the connection through", s.Pod.Namespace, s.Pod.Name, src, dst, err)
		case through && seen != src:
			t.Fatalf("%s/%s -> firewall %s: the firewall saw source %s, want the pod's %s", s.Pod.Namespace, s.Pod.Name, dst, seen, src)
		case through:
			t.Logf("%s/%s: %s -> %s connected; the firewall saw %s", s.Pod.Namespace, s.Pod.Name, src, dst, seen)
		case !isRefused(err):
			t.Fatalf("%s/%s (%s) -> firewall %s: got %v (seen %s); want the firewall to refuse it", s.Pod.Namespace, s.Pod.Name, src, dst, err, seen)
		default:
			t.Logf("%s/%s: %s -> %s refused: %v", s.Pod.Namespace, s.Pod.Name, src, dst, err)
		}
	}
	// inRanges asserts the sandbox's addresses, one per family, and that
	// the address on its eth0 is the one the plugin returned.
	inRanges := func(t *testing.T, s *netlab.Sandbox, v4, v6 netip.Prefix) {
		t.Helper()
		a4, ok4 := s.Addr(false)
		a6, ok6 := s.Addr(true)
		if !ok4 || !ok6 || !v4.Contains(a4) || !v6.Contains(a6) {
			t.Fatalf("%s/%s got %v; want one address in %s and one in %s", s.Pod.Namespace, s.Pod.Name, s.Addrs, v4, v6)
		}
		out, err := w.lab.Exec(s.Netns, "ip", "-br", "addr", "show", "dev", "eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{a4, a6} {
			if !strings.Contains(out, a.String()+"/") {
				t.Fatalf("eth0 of %s does not carry %s: %s", s.Netns, a, out)
			}
		}
		t.Logf("%s/%s eth0: %s", s.Pod.Namespace, s.Pod.Name, strings.TrimSpace(out))
	}

	var api, web, batch *corev1.Pod
	var apiBox, webBox, batchBox *netlab.Sandbox

	if !t.Run("namespace default frozen and trusted by the firewall", func(t *testing.T) {
		api = w.createPod(t, "payments", "api", nil)
		if got := api.Annotations[v4Key]; got != poolList("mainframe-trusted") {
			t.Fatalf("payments/api frozen ipv4pools %q, want the namespace's default", got)
		}
		if got := api.Annotations[provKey]; !strings.Contains(got, `"ipv4pools":"namespace"`) {
			t.Fatalf("payments/api provenance %q, want ipv4pools from the namespace", got)
		}
		apiBox = w.sandbox(t, api, "api")
		inRanges(t, apiBox, trustedV4, trustedV6)
		reach(t, apiBox, false, true)
		reach(t, apiBox, true, true)
	}) {
		return
	}

	if !t.Run("another namespace gets the default pools and is refused", func(t *testing.T) {
		web = w.createPod(t, "shop", "web", nil)
		webBox = w.sandbox(t, web, "web")
		inRanges(t, webBox, generalV4, generalV6)
		reach(t, webBox, false, false)
		reach(t, webBox, true, false)
	}) {
		return
	}

	if !t.Run("a pool the namespace may not use is refused at admission", func(t *testing.T) {
		err := w.c.Create(w.ctx, w.newPod("shop", "sneaky", map[string]string{v4Key: poolList("mainframe-trusted")}))
		if err == nil || !strings.Contains(err.Error(), "does not allow namespace") {
			t.Fatalf("shop pod naming mainframe-trusted: %v; want a refusal saying the pool does not allow the namespace", err)
		}
	}) {
		return
	}

	if !t.Run("a late edit is refused", func(t *testing.T) {
		patch := client.MergeFrom(api.DeepCopy())
		edited := api.DeepCopy()
		edited.Annotations[v4Key] = poolList("general")
		err := w.c.Patch(w.ctx, edited, patch)
		if err == nil || !strings.Contains(err.Error(), "delete the pod and create it again") {
			t.Fatalf("editing payments/api's pools: %v; want a refusal that says to recreate the pod", err)
		}
	}) {
		return
	}

	if !t.Run("a changed default moves new pods, not an old pod's new sandbox", func(t *testing.T) {
		var ns corev1.Namespace
		if err := w.c.Get(w.ctx, types.NamespacedName{Name: "payments"}, &ns); err != nil {
			t.Fatal(err)
		}
		ns.Annotations[v4Key] = poolList("general")
		ns.Annotations[v6Key] = poolList("general-v6")
		if err := w.c.Update(w.ctx, &ns); err != nil {
			t.Fatal(err)
		}
		w.waitFrozen(t, "payments", v4Key, poolList("general"))

		batch = w.createPod(t, "payments", "batch", nil)
		batchBox = w.sandbox(t, batch, "batch")
		inRanges(t, batchBox, generalV4, generalV6)
		reach(t, batchBox, false, false)

		// The api pod's sandbox dies and the runtime makes a new one: DEL,
		// then ADD with a new container ID, after the default changed.
		old := apiBox.ContainerID
		if err := w.lab.DelPod(apiBox); err != nil {
			t.Fatal(err)
		}
		apiBox = w.sandbox(t, api, "api-2")
		if apiBox.ContainerID == old {
			t.Fatalf("the new sandbox kept container ID %s", old)
		}
		inRanges(t, apiBox, trustedV4, trustedV6)
		reach(t, apiBox, false, true)
		reach(t, apiBox, true, true)
	}) {
		return
	}

	if !t.Run("everything released after the pods are deleted", func(t *testing.T) {
		for _, s := range []*netlab.Sandbox{apiBox, webBox, batchBox} {
			if err := w.lab.DelPod(s); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []*corev1.Pod{api, web, batch} {
			w.deletePod(t, p)
		}
		// A released claim stays until the webhook's history recorder has
		// written it down (its finalizer): wait for that, released
		// meanwhile (deletionTimestamp set) or gone.
		var claims v1alpha1.IPAMClaimList
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if err := w.c.List(w.ctx, &claims); err != nil {
				t.Fatal(err)
			}
			for _, c := range claims.Items {
				if c.DeletionTimestamp == nil {
					t.Fatalf("IPAMClaim %s of %s/%s not released after its sandbox was deleted", c.Name, c.Spec.Pod.Namespace, c.Spec.Pod.Name)
				}
			}
			if len(claims.Items) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d released IPAMClaims not recorded by the history within 30s: %v", len(claims.Items), claims.Items)
			}
		}
		var blocks v1alpha1.IPAMBlockList
		if err := w.c.List(w.ctx, &blocks); err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks.Items {
			if n := len(b.Spec.Allocations); n != 0 {
				t.Fatalf("block %s still holds %d allocations", b.Name, n)
			}
		}
		// The status controller follows the blocks; wait for it to catch
		// up, then require zero everywhere.
		deadline := time.Now().Add(60 * time.Second)
		for {
			var pools apiv1alpha1.IPPoolList
			if err := w.c.List(w.ctx, &pools); err != nil {
				t.Fatal(err)
			}
			busy := ""
			for _, p := range pools.Items {
				if p.Status.Allocated != 0 || p.Status.Free == 0 {
					busy += p.Name + " "
				}
			}
			if busy == "" {
				for _, p := range pools.Items {
					t.Logf("IPPool %s: allocated %d, free %d", p.Name, p.Status.Allocated, p.Status.Free)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("IPPool status still shows allocations in: %s", busy)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}) {
		return
	}
}
