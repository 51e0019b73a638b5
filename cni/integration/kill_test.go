package integration

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
)

// Scale of TestSIGKILLThenGC: 8 nodes x 40 pods, 2 processes in flight per
// node, half of the ADDs killed after a random delay up to killWindow,
// which spans a whole ADD on this machine (process start, reads, block
// write, claim write), so kills land in every phase.
const (
	killNodes      = 8
	killPodsPerNod = 40
	killWindow     = 120 * time.Millisecond
)

// TestSIGKILLThenGC kills plugin processes with SIGKILL at random points of
// their ADD. Then, as kubelet would, half of the killed pods are retried
// and the other half deleted; a quarter of the completed pods are deleted
// without a DEL (a lost DEL). One more ADD is killed right after its block
// write, so that there surely are slots naming a claim that was never
// written. The garbage collector then runs: it must free every such slot
// (the test fails if there were none to free); in the end every address is
// held by exactly one live pod, each live pod holds exactly the address its
// last ADD printed, and nothing else is held.
func TestSIGKILLThenGC(t *testing.T) {
	const ns = "kill"
	createNamespace(t, ns, nil)
	createPool(t, "kill-pool", "198.18.64.0/22", func(s *apiv1alpha1.IPPoolSpec) {
		s.AssignmentMode = apiv1alpha1.AssignmentManual
		s.BlockSize = 28 // small blocks: more claims, borrowing near the end
	})
	nodes := nodeNames("kill-node", killNodes)
	jobs := createPods(t, ns, "k", nodes, killPodsPerNod, frozen([]string{"kill-pool"}))

	var (
		mu     sync.Mutex
		addrOf = map[string]netip.Addr{} // completed ADDs by container
		killed []job
	)
	runPerNode(jobs, 2, func(j job) {
		c := call{Cmd: "ADD", ContainerID: j.ctr, Pod: j.pod, Conf: netConf{Node: j.node}}
		if rand.IntN(2) == 0 {
			o := do(t, c)
			mu.Lock()
			defer mu.Unlock()
			if o.Err != nil {
				t.Errorf("ADD %s: %s %s", j.ctr, o.Err.Msg, o.Err.Details)
				return
			}
			addrOf[j.ctr] = o.Addrs()[0]
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := c.command(ctx)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Errorf("start: %v", err)
			return
		}
		time.Sleep(time.Duration(rand.Int64N(int64(killWindow))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		mu.Lock()
		defer mu.Unlock()
		if err == nil { // finished before the kill
			o := parseOutcome(t, c, stdout.Bytes(), stderr.Bytes(), nil)
			addrOf[j.ctr] = o.Addrs()[0]
			return
		}
		killed = append(killed, j)
	})
	t.Logf("%d ADDs, %d killed mid-way", len(jobs), len(killed))
	if len(killed) == 0 {
		t.Fatal("no ADD was killed: killWindow is too short for this machine")
	}

	gone := map[string]bool{}
	deletePod := func(p *corev1.Pod) {
		if err := kc.Delete(context.Background(), p, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		gone[p.Name] = true
	}
	for i, j := range killed {
		if i%2 == 0 {
			// kubelet retries the sandbox: the retried ADD must succeed and
			// reuse whatever the killed one took.
			o := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: j.ctr, Pod: j.pod, Conf: netConf{Node: j.node}}), "retried ADD")
			addrOf[j.ctr] = o.Addrs()[0]
		} else {
			deletePod(j.pod)
		}
	}
	n := 0
	for _, j := range jobs {
		if _, done := addrOf[j.ctr]; done && !gone[j.pod.Name] && n%4 == 0 {
			deletePod(j.pod)
			delete(addrOf, j.ctr)
		}
		n++
	}

	// One more ADD killed at a known point, so that the collector surely
	// has work whatever the random kills left: after its block write, its
	// claim's POST held back from the API server. Its pod is deleted
	// without a DEL, as above.
	sure := killAtClaimWrite(t, ns, nodes[0])
	if _, ok := slotOf(t, "kill-pool", sure); !ok {
		t.Fatalf("the ADD killed at its claim write left no slot naming its claim %s", sure)
	}

	// What the kills left behind, before the collector runs.
	neverWritten, unrecorded := orphans(t, "kill-pool")
	t.Logf("before garbage collection: %d slots name a claim that was never written (ADDs killed between the block write and the claim write, one of them on purpose), %d a claim that records other addresses (killed, retried, and the retry took a slot elsewhere)", neverWritten, unrecorded)
	if neverWritten == 0 {
		t.Fatal("no slot names a claim that does not exist, not even that of the ADD killed at its claim write: the collector has nothing to free")
	}

	// The collector: first with a long grace period (frees nothing), then
	// with none.
	gc := &controller.Collector{Reader: kc, Live: kc, Store: kubestore.Store{Client: lean}, GracePeriod: time.Hour, Log: testr.New(t)}
	rep, err := gc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.ClaimsReleased+rep.SlotsReleased != 0 || rep.Suspects == 0 {
		t.Fatalf("inside the grace period the collector freed %+v", rep)
	}
	gc.GracePeriod = 0
	rep, err = gc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("garbage collection: %+v", rep)
	if rep.SlotsReleased != neverWritten+unrecorded {
		t.Errorf("freed %d slots no claim records, %d existed", rep.SlotsReleased, neverWritten+unrecorded)
	}
	if addr, ok := slotOf(t, "kill-pool", sure); ok {
		t.Errorf("after garbage collection %s is still held by %s, the claim the ADD killed at its claim write never wrote", addr, sure)
	}
	if n, u := orphans(t, "kill-pool"); n+u != 0 {
		t.Errorf("after garbage collection %d slots still name a claim that does not exist and %d a claim that does not record them (before: %d and %d)", n, u, neverWritten, unrecorded)
	}

	// Every held address belongs to a live pod's claim, and is exactly the
	// address that pod's ADD printed.
	held := poolState(t, "kill-pool")
	var claims v1alpha1.IPAMClaimList
	if err := kc.List(context.Background(), &claims); err != nil {
		t.Fatal(err)
	}
	claimOf := map[string]v1alpha1.IPAMClaim{}
	for _, c := range claims.Items {
		if c.Spec.Pod.Namespace == ns {
			claimOf[c.Name] = c
		}
	}
	live := 0
	for _, j := range jobs {
		if gone[j.pod.Name] {
			continue
		}
		live++
		want, ok := addrOf[j.ctr]
		if !ok {
			t.Fatalf("live pod %s has no address", j.ctr)
		}
		if holder, ok := held[want]; !ok || claimOf[holder].Spec.ContainerID != j.ctr {
			t.Fatalf("%s of live pod %s is not held by its claim (held by %q)", want, j.ctr, holder)
		}
	}
	if len(held) != live || len(claimOf) != live {
		t.Fatalf("%d addresses and %d claims held for %d live pods: leaked %d", len(held), len(claimOf), live, len(held)-live)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range addrOf {
		if seen[a] {
			t.Fatalf("%s held by two live pods", a)
		}
		seen[a] = true
	}
}

// slotOf returns the address a claim holds in the pool, if any.
func slotOf(t *testing.T, pool, claim string) (netip.Addr, bool) {
	t.Helper()
	for addr, holder := range poolState(t, pool) {
		if holder == claim {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// orphans counts the pool's slots that name a claim that does not exist
// (never written) and those whose claim exists but does not record them.
func orphans(t *testing.T, pool string) (neverWritten, unrecorded int) {
	t.Helper()
	var claims v1alpha1.IPAMClaimList
	if err := kc.List(context.Background(), &claims); err != nil {
		t.Fatal(err)
	}
	// records: claim -> the addresses it records.
	records := map[string]map[netip.Addr]bool{}
	for _, c := range claims.Items {
		records[c.Name] = map[netip.Addr]bool{}
		for _, a := range c.Spec.Addresses {
			records[c.Name][netip.MustParseAddr(a.Address)] = true
		}
	}
	for addr, holder := range poolState(t, pool) {
		rec, exists := records[holder]
		switch {
		case !exists:
			neverWritten++
		case !rec[addr]:
			unrecorded++
		}
	}
	return neverWritten, unrecorded
}

// killAtClaimWrite runs an ADD for a new pod on node through an API proxy
// that holds back the claim's POST, kills the plugin with SIGKILL once the
// POST has reached the proxy (its block write is done), and deletes the
// pod: it leaves a slot naming a claim that was never written. It returns
// that claim's name.
func killAtClaimWrite(t *testing.T, ns, node string) string {
	t.Helper()
	pod := createPod(t, ns, "k-at-claim-write", node, frozen([]string{"kill-pool"}))
	killedAtClaimWrite(t, pod, node)
	if err := kc.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	return allocator.ClaimID(networkName, pod.Name, "eth0")
}

// killedAtClaimWrite runs the pod's ADD (container ID: the pod's name)
// and kills it with SIGKILL once its claim's POST has reached the proxy:
// its slot is written, its claim is not.
func killedAtClaimWrite(t *testing.T, pod *corev1.Pod, node string) {
	t.Helper()
	proxy := startAPIProxy(t)
	proxy.holdNext(func(r *http.Request) bool {
		return r.Method == http.MethodPost && resourceOf(r.URL.Path) == "ipamclaims"
	})
	c := call{Cmd: "ADD", ContainerID: pod.Name, Pod: pod, Conf: netConf{Node: node, Kubeconfig: proxy.Kubeconfig}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.command(ctx)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-proxy.held:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	case err := <-exited:
		t.Fatalf("ADD %s ended (%v) without POSTing its claim: %s; requests: %s", pod.Name, err, out.Bytes(), describe(proxy.requests()))
	}
}
