package integration

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
// without a DEL (a lost DEL). The garbage collector then runs; in the end
// every address is held by exactly one live pod, each live pod holds
// exactly the address its last ADD printed, and nothing else is held.
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

	// What the kills left behind: slots whose claim was never written.
	var before v1alpha1.IPAMClaimList
	if err := kc.List(context.Background(), &before); err != nil {
		t.Fatal(err)
	}
	// records: claim -> the addresses it records.
	records := map[string]map[netip.Addr]bool{}
	for _, c := range before.Items {
		records[c.Name] = map[netip.Addr]bool{}
		for _, a := range c.Spec.Addresses {
			records[c.Name][netip.MustParseAddr(a.Address)] = true
		}
	}
	orphans := 0
	for addr, holder := range poolState(t, "kill-pool") {
		if !records[holder][addr] {
			orphans++
		}
	}
	t.Logf("before garbage collection: %d slots no claim records (ADDs killed between the block write and the claim write; some retried, taking a slot elsewhere)", orphans)

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
	if rep.SlotsReleased != orphans {
		t.Errorf("freed %d slots no claim records, %d existed", rep.SlotsReleased, orphans)
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
