package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestCNIVerbs: ADD twice returns the same address, CHECK verifies it,
// DEL twice succeeds, CHECK after DEL fails, GC frees what is not valid,
// STATUS and VERSION answer.
func TestCNIVerbs(t *testing.T) {
	createNode(t, "verbs-node", nil)
	createNamespace(t, "verbs", nil)
	createPool(t, "verbs-pool", "198.51.100.0/26", func(s *apiv1alpha1.IPPoolSpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{policy.LabelNamespaceName: "verbs"}}
	})
	conf := netConf{Node: "verbs-node"}
	pod := createPod(t, "verbs", "p1", "verbs-node", frozen([]string{"verbs-pool"}))

	add := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "ctr-1", Pod: pod, Conf: conf}), "ADD")
	if len(add.Addrs()) != 1 {
		t.Fatalf("ADD result %s", add.Stdout)
	}
	addr := add.Addrs()[0]
	inPool(t, addr, "198.51.100.0/26")
	if add.Result.IPs[0].Address != addr.String()+"/26" {
		t.Errorf("address %s does not carry the pool's prefix length", add.Result.IPs[0].Address)
	}
	again := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "ctr-1", Pod: pod, Conf: conf}), "second ADD")
	if len(again.Addrs()) != 1 || again.Addrs()[0] != addr {
		t.Fatalf("second ADD gave %s, first %s", again.Stdout, addr)
	}
	var pool apiv1alpha1.IPPool
	if err := kc.Get(context.Background(), client.ObjectKey{Name: "verbs-pool"}, &pool); err != nil {
		t.Fatal(err)
	}
	if len(pool.Finalizers) == 0 || pool.Finalizers[0] != apiv1alpha1.FinalizerAllocations {
		t.Fatalf("pool has no allocations finalizer after ADD: %v", pool.Finalizers)
	}

	prev := json.RawMessage(add.Stdout)
	check := conf
	check.PrevResult = prev
	mustOK(t, do(t, call{Cmd: "CHECK", ContainerID: "ctr-1", Pod: pod, Conf: check}), "CHECK")
	wrong := conf
	wrong.PrevResult = json.RawMessage(strings.Replace(string(add.Stdout), addr.String(), "198.51.100.60", 1))
	wantCode(t, do(t, call{Cmd: "CHECK", ContainerID: "ctr-1", Pod: pod, Conf: wrong}), 102, "198.51.100.60")

	for i := 0; i < 2; i++ {
		mustOK(t, do(t, call{Cmd: "DEL", ContainerID: "ctr-1", Pod: pod, Conf: conf}), "DEL")
	}
	wantCode(t, do(t, call{Cmd: "CHECK", ContainerID: "ctr-1", Pod: pod, Conf: check}), 102)
	// DEL of something never added is fine too.
	mustOK(t, do(t, call{Cmd: "DEL", ContainerID: "never", Conf: conf}), "DEL of unknown container")

	// GC: two attachments, one still valid.
	a := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "ctr-a", Pod: pod, Conf: conf}), "ADD a").Addrs()[0]
	mustOK(t, do(t, call{Cmd: "ADD", ContainerID: "ctr-b", Pod: pod, Conf: conf}), "ADD b")
	gc := conf
	gc.Valid = []types.GCAttachment{{ContainerID: "ctr-a", IfName: "eth0"}}
	mustOK(t, do(t, call{Cmd: "GC", Conf: gc}), "GC")
	var claims v1alpha1.IPAMClaimList
	if err := kc.List(context.Background(), &claims, client.MatchingFields{"spec.node": "verbs-node"}); err != nil {
		t.Fatal(err)
	}
	if len(claims.Items) != 1 || claims.Items[0].Spec.ContainerID != "ctr-a" || claims.Items[0].Spec.Addresses[0].Address != a.String() {
		t.Fatalf("after GC: %+v", claims.Items)
	}
	var blocks v1alpha1.IPAMBlockList
	if err := kc.List(context.Background(), &blocks, client.MatchingFields{"spec.pool": "verbs-pool"}); err != nil {
		t.Fatal(err)
	}
	if len(blocks.Items) != 1 || len(blocks.Items[0].Spec.Allocations) != 1 {
		t.Fatalf("after GC the pool holds %+v", blocks.Items)
	}

	mustOK(t, do(t, call{Cmd: "STATUS", Conf: conf}), "STATUS")
	v := mustOK(t, do(t, call{Cmd: "VERSION", Conf: conf}), "VERSION")
	if !strings.Contains(string(v.Stdout), `"1.1.0"`) {
		t.Fatalf("VERSION: %s", v.Stdout)
	}
}
