package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"k8s.io/client-go/rest"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
)

// fakeAPI answers the reads of an ADD: the namespace, no IPPools, no
// affinity, and the Nodes it knows, those in cached from the watch cache
// (resourceVersion=0) too, the others only when read from etcd (a node
// that has just registered). It records the node reads.
type fakeAPI struct {
	nodes, cached map[string]bool

	mu        sync.Mutex
	nodeReads []string // "name cached" or "name live"
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	cached := r.URL.Query().Get("resourceVersion") == "0"
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v1/nodes/"):
		name := strings.TrimPrefix(r.URL.Path, "/api/v1/nodes/")
		how := "live"
		if cached {
			how = "cached"
		}
		f.mu.Lock()
		f.nodeReads = append(f.nodeReads, name+" "+how)
		f.mu.Unlock()
		if f.nodes[name] && (!cached || f.cached[name]) {
			_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": map[string]any{"name": name, "labels": map[string]string{"zone": "a"}}})
			return
		}
	case strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/"):
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": map[string]any{"name": "ns"}})
		return
	case strings.HasSuffix(r.URL.Path, "/ippools"):
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "ipam.poolguard.dev/v1alpha1", "kind": "IPPoolList", "items": []any{}})
		return
	}
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404, "message": r.URL.Path + " not found"})
}

// TestReadFactsUnknownNode: a node name the API server has no Node of
// fails the ADD's reads with ErrNodeNotRegistered (CNI code 7) and a
// message that says to set ipam.nodeName, after asking etcd past the
// watch cache; a node the watch cache has not seen yet is found there.
func TestReadFactsUnknownNode(t *testing.T) {
	api := &fakeAPI{nodes: map[string]bool{"old-node": true, "fresh-node": true}, cached: map[string]bool{"old-node": true}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c, err := kubestore.NewClient(&rest.Config{Host: srv.URL, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	pod := allocator.PodRef{Namespace: "ns", Name: "p", UID: "u-1"}
	read := func(node, from string) (facts, error) {
		cfg := &Config{Node: node, NodeFrom: from, PodAnnotations: map[string]string{}}
		return readFacts(context.Background(), newBlockCache(kubestore.Store{Client: c}, t.TempDir()), cfg, pod)
	}

	for _, node := range []string{"old-node", "fresh-node"} {
		api.nodeReads = nil
		f, err := read(node, "ipam.nodeName")
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		if f.pod.NodeLabels["zone"] != "a" {
			t.Errorf("%s: node labels %v", node, f.pod.NodeLabels)
		}
		// A known node costs the one cached read; a fresh one a second.
		want := []string{node + " cached"}
		if node == "fresh-node" {
			want = append(want, node+" live")
		}
		if strings.Join(api.nodeReads, ",") != strings.Join(want, ",") {
			t.Errorf("%s: node reads %v, want %v", node, api.nodeReads, want)
		}
	}

	api.nodeReads = nil
	_, err = read("worker-1.example.com", "the host name")
	if !errors.Is(err, ErrNodeNotRegistered) {
		t.Fatalf("error %v, want ErrNodeNotRegistered", err)
	}
	if want := "worker-1.example.com cached,worker-1.example.com live"; strings.Join(api.nodeReads, ",") != want {
		t.Errorf("node reads %v, want %s: the watch cache alone may be behind", api.nodeReads, want)
	}
	var te *types.Error
	if !errors.As(cniError(err), &te) || te.Code != types.ErrInvalidNetworkConfig {
		t.Fatalf("CNI error %+v, want code %d", te, types.ErrInvalidNetworkConfig)
	}
	for _, s := range []string{`"worker-1.example.com"`, "not registered", "the host name", "ipam.nodeName", "kubectl get nodes"} {
		if !strings.Contains(te.Msg+" "+te.Details, s) {
			t.Errorf("error %q: %q does not say %q", te.Msg, te.Details, s)
		}
	}
}
