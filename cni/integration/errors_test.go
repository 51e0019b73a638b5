package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestErrorsAndFailSafe: each failure gives its CNI code and a message
// naming the pod, the pool and the reason; an unfrozen pod never gets a
// Manual or restricted pool.
func TestErrorsAndFailSafe(t *testing.T) {
	createNode(t, "err-node", map[string]string{"zone": "a"})
	createNamespace(t, "errs", nil)
	createPool(t, "err-default", "203.0.113.0/26", nil)
	createPool(t, "err-restricted", "203.0.113.64/26", func(s *apiv1alpha1.IPPoolSpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{policy.LabelNamespaceName: "errs"}}
	})
	createPool(t, "err-manual", "203.0.113.128/27", func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
	createPool(t, "err-disabled", "203.0.113.160/27", func(s *apiv1alpha1.IPPoolSpec) {
		s.AssignmentMode = apiv1alpha1.AssignmentManual
		s.Disabled = true
	})
	createPool(t, "err-zone-b", "203.0.113.192/27", func(s *apiv1alpha1.IPPoolSpec) {
		s.AssignmentMode = apiv1alpha1.AssignmentManual
		s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "b"}}
	})
	conf := netConf{Node: "err-node"}

	t.Run("unknown pool", func(t *testing.T) {
		pod := createPod(t, "errs", "unknown", "err-node", frozen([]string{"no-such-pool"}))
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e1", Pod: pod, Conf: conf}), 100, "errs/unknown", "no-such-pool", "does not exist")
	})
	t.Run("disabled pool", func(t *testing.T) {
		pod := createPod(t, "errs", "disabled", "err-node", frozen([]string{"err-disabled"}))
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e2", Pod: pod, Conf: conf}), 11, "errs/disabled", "err-disabled", "disabled")
	})
	t.Run("node not allowed", func(t *testing.T) {
		pod := createPod(t, "errs", "zone", "err-node", frozen([]string{"err-zone-b"}))
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e3", Pod: pod, Conf: conf}), 100, "errs/zone", "err-zone-b", "err-node")
	})
	t.Run("named manual pool", func(t *testing.T) {
		pod := createPod(t, "errs", "manual", "err-node", frozen([]string{"err-manual"}))
		o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "e4", Pod: pod, Conf: conf}), "ADD")
		inPool(t, o.Addrs()[0], "203.0.113.128/27")
	})
	t.Run("unfrozen pod gets only unrestricted defaults", func(t *testing.T) {
		// Names the Manual pool and lives in the namespace the restricted
		// pool allows, but has no provenance: neither may serve it.
		pod := createPod(t, "errs", "unfrozen", "err-node", map[string]string{policy.AnnotationIPv4Pools: `["err-manual"]`})
		for i := 0; i < 5; i++ {
			o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "unfrozen-" + string(rune('a'+i)), Pod: pod, Conf: conf}), "ADD")
			inPool(t, o.Addrs()[0], "203.0.113.0/26")
		}
	})
	t.Run("unfrozen pod refused", func(t *testing.T) {
		pod := createPod(t, "errs", "unfrozen-refused", "err-node", nil)
		c := conf
		c.FailSafe = "refuse"
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e5", Pod: pod, Conf: c}), 101, "errs/unfrozen-refused", policy.AnnotationProvenance)
	})
	t.Run("runtimeConfig annotations", func(t *testing.T) {
		// The pod object has no annotations; the runtime passes them.
		pod := createPod(t, "errs", "runtime", "err-node", nil)
		c := conf
		c.Annotations = frozen([]string{"err-manual"})
		o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "e6", Pod: pod, Conf: c}), "ADD")
		inPool(t, o.Addrs()[0], "203.0.113.128/27")
	})
	t.Run("pod gone", func(t *testing.T) {
		pod := createPod(t, "errs", "ghost", "err-node", frozen(nil))
		pod.UID = "00000000-0000-0000-0000-000000000000"
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e7", Pod: pod, Conf: conf}), 3, "errs/ghost")
	})
	t.Run("a static pod, known to the API by its mirror pod", func(t *testing.T) {
		// The runtime passes the static pod's UID; the API's pod is the
		// kubelet's mirror, with another UID and the static one in its
		// annotation.
		const staticUID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
		ann := frozen(nil)
		ann[policy.AnnotationMirrorPod] = staticUID
		pod := createPod(t, "errs", "static-err-node", "err-node", ann)
		pod.UID = staticUID
		o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "e10", Pod: pod, Conf: conf}), "ADD")
		inPool(t, o.Addrs()[0], "203.0.113.0/26")
		mustOK(t, do(t, call{Cmd: "CHECK", ContainerID: "e10", Pod: pod, Conf: conf}), "CHECK")
		pod.UID = "ffffffffffffffffffffffffffffffff"
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e11", Pod: pod, Conf: conf}), 3, "errs/static-err-node")
	})
	t.Run("API server unreachable", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(bad, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
			t.Fatal(err)
		}
		pod := createPod(t, "errs", "offline", "err-node", frozen(nil))
		c := conf
		c.Kubeconfig = bad
		c.Timeout = "3s"
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e8", Pod: pod, Conf: c}), 11, "errs/offline")
		wantCode(t, do(t, call{Cmd: "DEL", ContainerID: "e8", Pod: pod, Conf: c}), 11)
		wantCode(t, do(t, call{Cmd: "STATUS", Conf: c}), 50)
	})
	t.Run("a refused credential or a missing kubeconfig does not block DEL", func(t *testing.T) {
		// What a node sees after poolguard is uninstalled: the plugin's
		// service account is gone. DEL succeeds (the runtime could never
		// finish the pod otherwise) and says on stderr what it left;
		// the claim stays for the garbage collector.
		refused := filepath.Join(t.TempDir(), "kubeconfig")
		kc, err := os.ReadFile(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.Load(kc)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range cfg.AuthInfos {
			a.ClientCertificate, a.ClientKey, a.ClientCertificateData, a.ClientKeyData = "", "", nil, nil
			a.Token = "not-a-valid-token"
		}
		if err := clientcmd.WriteToFile(*cfg, refused); err != nil {
			t.Fatal(err)
		}
		pod := createPod(t, "errs", "uninstalled", "err-node", frozen(nil))
		add := do(t, call{Cmd: "ADD", ContainerID: "e9", Pod: pod, Conf: conf})
		if add.Err != nil {
			t.Fatalf("ADD: %v", add.Err)
		}
		for _, path := range []string{refused, filepath.Join(t.TempDir(), "gone")} {
			c := conf
			c.Kubeconfig = path
			o := do(t, call{Cmd: "DEL", ContainerID: "e9", Pod: pod, Conf: c})
			if o.Err != nil {
				t.Errorf("DEL with %s: %v, want success", path, o.Err)
			}
			if !strings.Contains(string(o.Stderr), "garbage collector") {
				t.Errorf("DEL with %s says nothing of what it left: %s", path, o.Stderr)
			}
		}
		if o := do(t, call{Cmd: "CHECK", ContainerID: "e9", Pod: pod, Conf: conf}); o.Err != nil {
			t.Errorf("the claim is gone after a DEL that could not reach the API: %v", o.Err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		pod := createPod(t, "errs", "badconf", "err-node", frozen(nil))
		c := conf
		c.FailSafe = "maybe"
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e9", Pod: pod, Conf: c}), 7, "failSafe")
		c = conf
		c.Kubeconfig = "/nonexistent/kubeconfig"
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e9", Pod: pod, Conf: c}), 7, "/nonexistent/kubeconfig")
	})
	t.Run("pool re-created under the same name with another range", func(t *testing.T) {
		// The pod was admitted while "err-moved" was 198.51.100.128/28: the
		// webhook pinned that range into its provenance. The security team
		// deletes the pool and creates another of the same name elsewhere.
		createPool(t, "err-moved", "198.51.100.128/28", func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
		ann := frozen([]string{"err-moved"})
		prov, err := policy.ParseProvenance(ann[policy.AnnotationProvenance])
		if err != nil {
			t.Fatal(err)
		}
		prov.Ranges = map[string]string{"err-moved": "198.51.100.128/28"}
		ann[policy.AnnotationProvenance] = prov.String()
		pinned := createPod(t, "errs", "pinned", "err-node", ann)
		if err := kc.Delete(context.Background(), &apiv1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "err-moved"}}); err != nil {
			t.Fatal(err)
		}
		createPool(t, "err-moved", "198.51.100.144/28", func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e11", Pod: pinned, Conf: conf}), 100,
			"errs/pinned", "err-moved", "198.51.100.144/28", "198.51.100.128/28", "delete the pod and create it again")
		// A pod admitted after the change is pinned to the new range and
		// gets an address from it.
		prov.Ranges["err-moved"] = "198.51.100.144/28"
		ann[policy.AnnotationProvenance] = prov.String()
		fresh := createPod(t, "errs", "fresh", "err-node", ann)
		o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "e12", Pod: fresh, Conf: conf}), "ADD")
		inPool(t, o.Addrs()[0], "198.51.100.144/28")
	})
	t.Run("node not registered", func(t *testing.T) {
		// The plugin's node name is not a Node's (it fell back to a host
		// name that differs from the registered name): the ADD is
		// refused as a configuration error saying what to set, and
		// nothing is written under the bogus node.
		const ghost = "err-node-unregistered"
		pod := createPod(t, "errs", "unregistered", "err-node", frozen(nil))
		c := conf
		c.Node = ghost
		ctr := "e-unregistered"
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: ctr, Pod: pod, Conf: c}), 7,
			"errs/unregistered", `"`+ghost+`"`, "not registered", "ipam.nodeName", "kubectl get nodes")
		ctx := context.Background()
		id := allocator.ClaimID("k8s-pod-network", ctr, "eth0")
		if err := kc.Get(ctx, client.ObjectKey{Name: id}, &v1alpha1.IPAMClaim{}); !apierrors.IsNotFound(err) {
			t.Errorf("claim %s after the refused ADD: %v, want none", id, err)
		}
		if err := kc.Get(ctx, client.ObjectKey{Name: ghost}, &v1alpha1.IPAMAffinity{}); !apierrors.IsNotFound(err) {
			t.Errorf("affinity of %s after the refused ADD: %v, want none", ghost, err)
		}
		var blocks v1alpha1.IPAMBlockList
		if err := kc.List(ctx, &blocks); err != nil {
			t.Fatal(err)
		}
		for _, b := range blocks.Items {
			if b.Spec.Node == ghost {
				t.Errorf("block %s claimed for %s", b.Name, ghost)
			}
			for _, a := range b.Spec.Allocations {
				if a.Node == ghost || a.Claim == id {
					t.Errorf("slot %d of block %s taken for %s (claim %s)", a.Slot, b.Name, a.Node, a.Claim)
				}
			}
		}
		// DEL never needs the Node: a runtime must be able to tear down.
		mustOK(t, do(t, call{Cmd: "DEL", ContainerID: ctr, Pod: pod, Conf: c}), "DEL")
		// A node that registers is served at once, though the watch
		// cache may not have it yet.
		createNode(t, ghost, nil)
		o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: ctr, Pod: pod, Conf: c}), "ADD once the Node exists")
		inPool(t, o.Addrs()[0], "203.0.113.0/26")
		mustOK(t, do(t, call{Cmd: "DEL", ContainerID: ctr, Pod: pod, Conf: c}), "DEL")
	})
	t.Run("missing pod identity", func(t *testing.T) {
		wantCode(t, do(t, call{Cmd: "ADD", ContainerID: "e10", Conf: conf}), 4, "K8S_POD_NAMESPACE")
	})
}
