package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// Scale of TestManyNodesConcurrently. 16 nodes x 128 pods = 2048 ADDs,
// the floor of 16 nodes and 2,000 allocations; one pod in four is
// dual stack (2560 addresses in all); 2 plugin processes
// in flight per node (32 at once) is what a node starting a burst of pods
// sees, and keeps the run to about a minute on a 2-core machine, where
// every process start costs CPU the API server also needs.
const (
	scaleNodes       = 16
	scalePodsPerNode = 128
	scalePerNode     = 2
)

// job is one pod's ADD on its node.
type job struct {
	node string
	pod  *corev1.Pod
	ctr  string
}

// createPods creates pods in parallel and returns one job per pod.
func createPods(t testing.TB, ns, tag string, nodes []string, perNode int, ann map[string]string) []job {
	t.Helper()
	jobs := make([]job, 0, len(nodes)*perNode)
	for _, n := range nodes {
		for i := 0; i < perNode; i++ {
			jobs = append(jobs, job{node: n, ctr: fmt.Sprintf("%s-%s-%03d", tag, n, i)})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: jobs[i].ctr, Annotations: ann},
				Spec:       corev1.PodSpec{NodeName: jobs[i].node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
			}
			if err := kc.Create(context.Background(), p); err != nil {
				t.Errorf("creating pod: %v", err)
				return
			}
			jobs[i].pod = p
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return jobs
}

// runPerNode runs fn for every job, with perNode jobs of each node in
// flight at once, as each node's runtime would.
func runPerNode(jobs []job, perNode int, fn func(job)) {
	byNode := map[string][]job{}
	for _, j := range jobs {
		byNode[j.node] = append(byNode[j.node], j)
	}
	var wg sync.WaitGroup
	for _, js := range byNode {
		ch := make(chan job)
		for w := 0; w < perNode; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range ch {
					fn(j)
				}
			}()
		}
		go func() {
			for _, j := range js {
				ch <- j
			}
			close(ch)
		}()
	}
	wg.Wait()
}

func nodeNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
		createNode(nil, out[i], nil)
	}
	return out
}

// poolState reads every block of a pool and returns address -> claim.
func poolState(t *testing.T, pool string) map[netip.Addr]string {
	t.Helper()
	var blocks v1alpha1.IPAMBlockList
	if err := kc.List(context.Background(), &blocks, client.MatchingFields{"spec.pool": pool}); err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]string{}
	for _, b := range blocks.Items {
		cidr := netip.MustParsePrefix(b.Spec.CIDR)
		for _, a := range b.Spec.Allocations {
			addr := cidr.Addr()
			for i := int32(0); i < a.Slot; i++ {
				addr = addr.Next()
			}
			if prev, dup := out[addr]; dup {
				t.Fatalf("%s held twice in pool %s (%s, %s)", addr, pool, prev, a.Claim)
			}
			out[addr] = a.Claim
		}
	}
	return out
}

// TestManyNodesConcurrently runs the real plugin binary for 2048 pods on
// 16 nodes, 32 processes at once, a quarter of them dual stack: zero
// duplicates, every address in its pool, and the API state agrees with
// what the plugins printed.
func TestManyNodesConcurrently(t *testing.T) {
	createNamespace(t, "scale", nil)
	createNamespace(t, "scale-ds", nil)
	createPool(t, "scale-v4", "198.18.16.0/20", func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
	createPool(t, "scale-v6", "2001:db8:5ca1::/48", func(s *apiv1alpha1.IPPoolSpec) {
		s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{policy.LabelNamespaceName: "scale-ds"}}
	})
	nodes := nodeNames("scale-node", scaleNodes)
	jobs := createPods(t, "scale", "s", nodes, scalePodsPerNode*3/4, frozen([]string{"scale-v4"}))
	jobs = append(jobs, createPods(t, "scale-ds", "d", nodes, scalePodsPerNode/4, frozen([]string{"scale-v4"}))...)
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	dual := 0

	var (
		mu    sync.Mutex
		seen  = map[netip.Addr]string{}
		fails int
	)
	start := time.Now()
	runPerNode(jobs, scalePerNode, func(j job) {
		o := do(t, call{Cmd: "ADD", ContainerID: j.ctr, Pod: j.pod, Conf: netConf{Node: j.node}})
		mu.Lock()
		defer mu.Unlock()
		if o.Err != nil {
			fails++
			t.Errorf("ADD %s: %d %s: %s", j.ctr, o.Err.Code, o.Err.Msg, o.Err.Details)
			return
		}
		addrs := o.Addrs()
		want := 1
		if j.pod.Namespace == "scale-ds" {
			want = 2
			dual++
		}
		if len(addrs) != want {
			t.Errorf("ADD %s: %d addresses: %s", j.ctr, len(addrs), o.Stdout)
			return
		}
		inPool(t, addrs[0], "198.18.16.0/20")
		if want == 2 {
			inPool(t, addrs[1], "2001:db8:5ca1::/48")
		}
		for _, a := range addrs {
			if prev, dup := seen[a]; dup {
				t.Errorf("%s handed to %s and %s", a, prev, j.ctr)
			}
			seen[a] = j.ctr
		}
	})
	took := time.Since(start)
	t.Logf("%d ADDs (%d dual stack, %d addresses) on %d nodes, %d processes in flight: %s (%.0f ADDs/s), %d failed",
		len(jobs), dual, len(seen), scaleNodes, scaleNodes*scalePerNode, took.Round(time.Millisecond), float64(len(jobs))/took.Seconds(), fails)
	if len(seen) != len(jobs)+dual || len(seen) < 2000 {
		t.Fatalf("%d distinct addresses for %d pods (%d dual stack)", len(seen), len(jobs), dual)
	}
	v4, v6 := poolState(t, "scale-v4"), poolState(t, "scale-v6")
	if len(v4) != len(jobs) || len(v6) != dual {
		t.Fatalf("API state holds %d v4 and %d v6 addresses for %d pods", len(v4), len(v6), len(jobs))
	}
	for a := range seen {
		if _, ok := v4[a]; !ok {
			if _, ok := v6[a]; !ok {
				t.Fatalf("%s printed by a plugin but not held in any block", a)
			}
		}
	}
}

// TestSmallPoolSharedByEightNodes: a /29 (6 usable addresses) named by pods
// on 8 nodes at once fills exactly, then refuses with the exhaustion error;
// a DEL makes room for exactly one more (with the cooldown off: with it
// on, see TestCooldown).
func TestSmallPoolSharedByEightNodes(t *testing.T) {
	const ns = "fw"
	createNamespace(t, ns, nil)
	createPool(t, "fw-29", "198.51.100.248/29", func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
	nodes := nodeNames("fw-node", 8)
	jobs := createPods(t, ns, "a", nodes, 1, frozen([]string{"fw-29"}))
	jobs = append(jobs, createPods(t, ns, "b", nodes[:1], 1, frozen([]string{"fw-29"}))...) // 9 pods for 6 addresses

	var (
		mu      sync.Mutex
		got     = map[netip.Addr]job{}
		refused []job
		holders []job
	)
	runPerNode(jobs, 2, func(j job) {
		o := do(t, call{Cmd: "ADD", ContainerID: j.ctr, Pod: j.pod, Conf: netConf{Node: j.node}})
		mu.Lock()
		defer mu.Unlock()
		if o.Err != nil {
			wantCode(t, o, 11, "exhausted", "fw-29", "198.51.100.248/29", j.pod.Namespace+"/"+j.pod.Name)
			refused = append(refused, j)
			return
		}
		a := o.Addrs()[0]
		inPool(t, a, "198.51.100.248/29")
		if a == netip.MustParseAddr("198.51.100.248") || a == netip.MustParseAddr("198.51.100.255") {
			t.Errorf("handed out the network or broadcast address %s", a)
		}
		if _, dup := got[a]; dup {
			t.Errorf("%s handed out twice", a)
		}
		got[a] = j
		holders = append(holders, j)
	})
	if len(got) != 6 || len(refused) != 3 {
		t.Fatalf("%d allocated, %d refused; want 6 and 3", len(got), len(refused))
	}
	if len(poolState(t, "fw-29")) != 6 {
		t.Fatal("API state does not hold 6 addresses")
	}
	// Free one; exactly one of the refused pods now fits, at once with
	// the cooldown off.
	h := holders[rand.IntN(len(holders))]
	mustOK(t, do(t, call{Cmd: "DEL", ContainerID: h.ctr, Pod: h.pod, Conf: netConf{Node: h.node}}), "DEL")
	mustOK(t, do(t, call{Cmd: "ADD", ContainerID: refused[0].ctr, Pod: refused[0].pod, Conf: netConf{Node: refused[0].node, Cooldown: "0s"}}), "ADD after DEL")
	wantCode(t, do(t, call{Cmd: "ADD", ContainerID: refused[1].ctr, Pod: refused[1].pod, Conf: netConf{Node: refused[1].node, Cooldown: "0s"}}), 11, "exhausted")
	var pool apiv1alpha1.IPPool
	if err := kc.Get(context.Background(), client.ObjectKey{Name: "fw-29"}, &pool); err != nil {
		t.Fatal(err)
	}
}
