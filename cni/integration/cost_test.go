package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/kubestore"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestADDRequestCount counts, at a TLS proxy in front of the API server,
// the requests one ADD of the real plugin binary makes, single and dual
// stack: warm (a node's next pod, its block and affinity cached in
// lockDir) and cold (a node's first pod, with an empty lockDir: the node
// claims a block per family). The warm figures are the README's ("What an
// ADD costs"): 6 requests in 3 round trips single stack, 7 in 4 dual
// stack, made of one read each of the pod, the namespace, the node and the
// IPPools, one PUT of the block per family and one POST of the claim. The
// cold ones are logged and bounded (see coldMax). Round trips are logged
// only: they are read from timestamps.
func TestADDRequestCount(t *testing.T) {
	ctx := context.Background()
	proxy := startAPIProxy(t)
	const ns = "cost"
	createNamespace(t, ns, nil)
	manual := func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual }
	createPool(t, "cost-v4", "198.18.32.0/24", manual)
	createPool(t, "cost-v6", "2001:db8:c057::/48", manual)
	dual := frozenPools([]string{"cost-v4"}, []string{"cost-v6"})
	// The API server's watch cache of IPAMBlocks answers its first list
	// with 429 while it initializes (client-go retries after a second),
	// which a running cluster's did long ago: start it before counting.
	for _, pool := range []string{"cost-v4", "cost-v6"} {
		if _, err := (kubestore.Store{Client: lean}).ClaimedBlocks(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	// poolsCached waits for the watch cache to show both pools, with
	// their finalizer once an ADD has added it.
	poolsCached := func(t *testing.T, inUse bool) {
		t.Helper()
		untilCached(t, "the pools", func() (bool, error) {
			var l metav1.PartialObjectMetadataList
			err := lean.List(ctx, kubestore.IPPools, kubestore.ReadOpts{Cached: true, MetadataOnly: true}, &l)
			n := 0
			for _, p := range l.Items {
				if (p.Name == "cost-v4" || p.Name == "cost-v6") && (!inUse || slices.Contains(p.Finalizers, apiv1alpha1.FinalizerAllocations)) {
					n++
				}
			}
			return n == 2, err
		})
	}
	poolsCached(t, false)

	// add runs one ADD of a new pod through the proxy and returns the
	// requests it made.
	add := func(t *testing.T, conf netConf, name string, ann map[string]string, families int) []proxied {
		t.Helper()
		pod := createPod(t, ns, name, conf.Node, ann)
		untilCached(t, "pod "+name, func() (bool, error) {
			var m metav1.PartialObjectMetadata
			err := lean.Get(ctx, kubestore.Pods, name, kubestore.ReadOpts{Namespace: ns, Cached: true, MetadataOnly: true}, &m)
			return err == nil, client.IgnoreNotFound(err)
		})
		proxy.reset()
		o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: pod.Name, Pod: pod, Conf: conf}), "ADD "+name)
		if len(o.Addrs()) != families {
			t.Fatalf("ADD %s: %s, want %d addresses", name, o.Stdout, families)
		}
		reqs := proxy.requests()
		t.Logf("ADD %s: %d requests in %d round trips:%s", name, len(reqs), rounds(reqs), describe(reqs))
		return reqs
	}
	// coldMax bounds a cold ADD: one round of reads (the four above and
	// the node's affinity, which no cache holds yet); then per family the
	// affinity again (under the node lock: another process of the node may
	// have just claimed a block), the pool's blocks as metadata, the
	// block's create, the affinity's write and the block's write; then the
	// claim. The pool's first allocation ever also adds its finalizer: a
	// GET and a PUT of the IPPool, per family.
	coldMax := func(families int, first bool) int {
		n := 5 + 5*families + 1
		if first {
			n += 2 * families
		}
		return n
	}

	// The pools' first allocation, on a node of its own: it adds their
	// finalizers, which no later ADD does.
	createNode(t, "cost-first", nil)
	first := add(t, netConf{Node: "cost-first", Kubeconfig: proxy.Kubeconfig, LockDir: t.TempDir()}, "cost-first", dual, 2)
	if limit := coldMax(2, true); len(first) > limit {
		t.Errorf("the pools' first ADD, dual stack: %d requests (listed above), more than %d", len(first), limit)
	}
	poolsCached(t, true)

	reads := []string{"GET pods", "GET namespaces", "GET nodes", "GET ippools"}
	for _, tc := range []struct {
		name     string
		ann      map[string]string
		families int
		// warm is what the README says an ADD costs.
		warm []string
	}{
		{"single stack", frozenPools([]string{"cost-v4"}, nil), 1,
			append(slices.Clone(reads), "PUT ipamblocks", "POST ipamclaims")},
		{"dual stack", dual, 2,
			append(slices.Clone(reads), "PUT ipamblocks", "PUT ipamblocks", "POST ipamclaims")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := fmt.Sprintf("cost-%d", tc.families)
			createNode(t, node, nil)
			// A lockDir of its own: the cold ADD finds no cache at all.
			conf := netConf{Node: node, Kubeconfig: proxy.Kubeconfig, LockDir: t.TempDir()}
			cold := add(t, conf, node+"-cold", tc.ann, tc.families)
			warm := add(t, conf, node+"-warm", tc.ann, tc.families)
			if got := kinds(warm); !slices.Equal(got, sorted(tc.warm)) {
				t.Errorf("warm ADD, %s: %d requests %v (listed above); the README says %d: %v", tc.name, len(warm), got, len(tc.warm), sorted(tc.warm))
			}
			if limit := coldMax(tc.families, false); len(cold) > limit {
				t.Errorf("cold ADD, %s: %d requests (listed above), more than %d", tc.name, len(cold), limit)
			}
		})
	}
}

// untilCached waits until the API server's watch cache, which the plugin
// reads (resourceVersion 0), shows what the test has just written. A
// kubelet's ADD comes long after the pod's creation; here it would come
// at once, and a cache a moment behind makes the plugin read again from
// etcd: one request more, and a test that fails now and then.
func untilCached(t *testing.T, what string, ok func() (bool, error)) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var done bool
		if done, err = ok(); done && err == nil {
			return
		}
	}
	t.Fatalf("the API server's watch cache does not show %s within 10s (last error: %v)", what, err)
}

// frozenPools returns the annotations poolguard's webhook would freeze onto
// a pod naming pools of both families (nil: the family's defaults).
func frozenPools(v4, v6 []string) map[string]string {
	ann := frozen(v4)
	if v6 != nil {
		prov, err := policy.ParseProvenance(ann[policy.AnnotationProvenance])
		if err != nil {
			panic(err)
		}
		prov.IPv6 = policy.SourcePod
		ann[policy.AnnotationIPv6Pools] = policy.FormatPoolList(v6)
		ann[policy.AnnotationProvenance] = prov.String()
	}
	return ann
}

// kinds renders each request as its verb and resource ("GET pods"),
// sorted.
func kinds(reqs []proxied) []string {
	out := make([]string, 0, len(reqs))
	for _, r := range reqs {
		out = append(out, r.Method+" "+resourceOf(r.Path))
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// resourceOf returns the resource an API path names: /api/v1/nodes/n and
// /apis/g/v1/namespaces/ns/things/x give nodes and things; a namespace
// itself (/api/v1/namespaces/ns) gives namespaces.
func resourceOf(path string) string {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(seg) >= 3 && seg[0] == "api":
		seg = seg[2:]
	case len(seg) >= 4 && seg[0] == "apis":
		seg = seg[3:]
	default:
		return path
	}
	if seg[0] == "namespaces" && len(seg) >= 3 {
		return seg[2]
	}
	return seg[0]
}
