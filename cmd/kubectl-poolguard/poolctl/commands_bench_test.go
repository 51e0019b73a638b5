package poolctl_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/history/archive"
	"poolguard.dev/poolguard/allocator/kubestore"
	storev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

// BenchmarkCommands runs drift -A, drift -n and who-had in this process
// against the local control plane (as test/scale does), on a cluster of
// 100 namespaces and 1,000 pods, then grown to 1,000 namespaces, 1,000
// IPPools and 10,000 running pods, each with its IPAMClaim: read the
// ratios between the two sizes. Besides the time, it reports the API
// server's CPU (its process_cpu_seconds_total), this process's CPU, the
// peak of this process's live heap, and how many pods the API server took
// out of its watch cache, per command. drift-A-pages-of-5000 is drift -A
// reading pods in pages of 5,000 instead of kubectl's 500: the watch cache
// serves each page by collecting every pod after the previous page's
// last, so what it takes grows with the square of the pods over the page
// size.
//
//	go test ./cmd/kubectl-poolguard/poolctl -run '^$' -bench Commands -benchtime 5x
func BenchmarkCommands(b *testing.B) {
	e := controlPlane(b)
	kc, err := userKubeconfig(e, "bench-admin", "system:masters")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	pop := &population{env: e, store: storeClient(b), world: newWorld(policy.Rules{}, 1000, 1000, 10000), created: map[string]bool{}}
	if pop.kube, err = kubernetes.NewForConfig(e.Config); err != nil {
		b.Fatal(err)
	}
	// The probe: the first pod with an IPv4 address, in a namespace of
	// the small cluster; who-had asks about its address, which two pods
	// held before.
	probe := pop.world.pods[0]
	for _, p := range pop.world.pods {
		if len(p.IPs) > 0 && p.IPs[0].Is4() {
			probe = p
			break
		}
	}
	for _, size := range []struct{ namespaces, pods int }{{100, 1000}, {1000, 10000}} {
		start := time.Now()
		if err := pop.grow(ctx, size.namespaces); err != nil {
			b.Fatal(err)
		}
		if err := pop.recordPast(ctx, probe.IPs[0]); err != nil {
			b.Fatal(err)
		}
		b.Logf("cluster of %d namespaces, %d pods, %d IPPools: populated in %s", size.namespaces, pop.pods, pop.pools, time.Since(start).Round(time.Second))
		for _, cmd := range []struct {
			name string
			args []string
			// page, when set, is the page size drift -A reads pods in.
			page int64
		}{
			{name: "drift-A", args: []string{"drift", "-A"}},
			{name: "drift-A-pages-of-5000", args: []string{"drift", "-A"}, page: 5000},
			{name: "drift-n", args: []string{"drift", "-n", probe.Namespace}},
			{name: "who-had", args: []string{"who-had", probe.IPs[0].String()}},
		} {
			b.Run(fmt.Sprintf("%s/pods=%d", cmd.name, size.pods), func(b *testing.B) {
				pods := 0
				if strings.HasPrefix(cmd.name, "drift-A") {
					pods = pop.pods
				}
				if cmd.page > 0 {
					defer poolctl.SetPageSize(cmd.page)()
				}
				pop.measure(ctx, b, append([]string{"--kubeconfig", kc}, cmd.args...), pods)
			})
		}
	}
}

// population creates a world's objects in the control plane, a few
// namespaces at a time.
type population struct {
	env     *harness.Env
	store   client.Client
	kube    *kubernetes.Clientset
	world   *world
	created map[string]bool
	// namespaces, pods and pools count what exists.
	namespaces, pods, pools int
	recorded                bool
}

// grow creates the first n namespaces of the world, their pods (running,
// with their addresses) and claims, and the pools they name, or every
// pool once n is the world's.
func (p *population) grow(ctx context.Context, n int) error {
	w := p.world
	used := map[string]bool{}
	for _, ns := range w.nsList[:n] {
		for _, fam := range policy.Families {
			refs, _ := policy.ParsePoolList(ns.Annotations[fam.AnnotationKey()])
			for _, r := range refs {
				used[r] = true
			}
		}
	}
	used["general-v6"] = true
	var objs []client.Object
	for _, pool := range w.pools {
		if (n == len(w.nsList) || used[pool.Name]) && !p.created["pool/"+pool.Name] {
			p.created["pool/"+pool.Name] = true
			p.pools++
			o := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: pool.Name}, Spec: v1alpha1.IPPoolSpec{CIDR: pool.CIDR.String(), AssignmentMode: v1alpha1.AssignmentAutomatic}}
			if pool.Manual {
				o.Spec.AssignmentMode = v1alpha1.AssignmentManual
			}
			if pool.NamespaceSelector != nil {
				sel, err := metav1.ParseToLabelSelector(pool.NamespaceSelector.String())
				if err != nil {
					return err
				}
				o.Spec.NamespaceSelector = sel
			}
			objs = append(objs, o)
		}
	}
	for _, ns := range w.nsList[:n] {
		if !p.created["ns/"+ns.Name] {
			p.created["ns/"+ns.Name] = true
			p.namespaces++
			objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}})
		}
	}
	if err := parallelCreate(ctx, objs, func(o client.Object) error { return p.env.Client.Create(ctx, o) }); err != nil {
		return err
	}
	var pods []poolctl.Pod
	for i, pod := range w.pods {
		if i%len(w.nsList) < n && !p.created["pod/"+pod.Namespace+"/"+pod.Name] {
			p.created["pod/"+pod.Namespace+"/"+pod.Name] = true
			pods = append(pods, pod)
		}
	}
	p.pods += len(pods)
	return parallel(ctx, len(pods), func(i int) error {
		o := apiPod(pods[i])
		status := o.Status
		o.ResourceVersion, o.UID, o.CreationTimestamp = "", "", metav1.Time{}
		if err := p.env.Client.Create(ctx, o); err != nil {
			return err
		}
		o.Status = status
		if err := p.env.Client.Status().Update(ctx, o); err != nil {
			return err
		}
		if len(pods[i].IPs) == 0 {
			return nil
		}
		return p.store.Create(ctx, claimOf(pods[i], string(o.UID)))
	})
}

// claimOf is the claim the plugin would have written for a pod.
func claimOf(p poolctl.Pod, uid string) *storev1alpha1.IPAMClaim {
	c := &storev1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-" + strings.ReplaceAll(p.Namespace+"-"+p.Name, "_", "-"), Finalizers: []string{storev1alpha1.FinalizerHistory}},
		Spec: storev1alpha1.IPAMClaimSpec{Network: "k8s-pod-network", ContainerID: fmt.Sprintf("%064x", len(p.Name)*7919+len(p.Namespace)), IfName: "eth0", Node: p.Node,
			Pod: storev1alpha1.PodReference{Namespace: p.Namespace, Name: p.Name, UID: uid}},
	}
	for _, ip := range p.IPs {
		bits := 26
		if ip.Is6() {
			bits = 122
		}
		block, _ := ip.Prefix(bits)
		pool, _ := ip.Prefix(24)
		if ip.Is6() {
			pool, _ = ip.Prefix(112)
		}
		c.Spec.Addresses = append(c.Spec.Addresses, storev1alpha1.ClaimAddress{Pool: "bench", PoolCIDR: pool.String(), Block: block.String(), Address: ip.String(), Seq: 1})
	}
	c.Labels = kubestore.ClaimShardLabels(c)
	return c
}

// recordPast files, once, two earlier holders of addr in the history.
func (p *population) recordPast(ctx context.Context, addr netip.Addr) error {
	if p.recorded {
		return nil
	}
	p.recorded = true
	day := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour)
	var recs []history.Record
	for i := range 2 {
		recs = append(recs, history.Record{Address: addr, Pool: "bench", Namespace: "gone", Pod: fmt.Sprintf("past-%d", i), Node: "node-0",
			ContainerID: fmt.Sprintf("%064x", i), IfName: "eth0", From: day.Add(time.Duration(i) * time.Hour), To: day.Add(time.Duration(i)*time.Hour + 30*time.Minute)})
	}
	return archive.Archive{Client: p.store, Live: p.store}.Append(ctx, recs)
}

// measure runs the command b.N times and reports its costs per run: its
// time, the API server's CPU, this process's CPU and the peak of its live
// heap above what it held before, and, with pods, the time per pod.
func (p *population) measure(ctx context.Context, b *testing.B, args []string, pods int) {
	// server reads the API server's CPU time and how many pods its
	// lists have taken out of its watch cache (a page takes every pod
	// after the last one's key, not only the page's).
	server := func() (cpu, fetched float64) {
		raw, err := p.kube.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			name, v, _ := strings.Cut(line, " ")
			f, _ := strconv.ParseFloat(v, 64)
			switch {
			case name == "process_cpu_seconds_total":
				cpu = f
			case strings.HasPrefix(name, "apiserver_storage_list_fetched_objects_total{") && strings.Contains(name, `resource="pods"`):
				fetched += f
			}
		}
		return cpu, fetched
	}
	// The API server's CPU counter moves in ticks of 10 ms, and reading
	// it costs some: read it twice to take that out.
	api0, _ := server()
	api1, fetched1 := server()
	runtime.GC()
	peak := peakHeap()
	self0 := processCPU(b)
	b.ResetTimer()
	for b.Loop() {
		if code := poolctl.Run(ctx, args, strings.NewReader(""), io.Discard, io.Discard); code > poolctl.ExitFound {
			b.Fatalf("kubectl poolguard %s: exit %d", strings.Join(args, " "), code)
		}
	}
	b.StopTimer()
	self1 := processCPU(b)
	heap := peak()
	api2, fetched2 := server()
	n := float64(b.N)
	b.ReportMetric(max(0, api2-api1-(api1-api0))*1e3/n, "apiserver-cpu-ms/op")
	b.ReportMetric((fetched2-fetched1)/n, "pods-fetched/op")
	b.ReportMetric(float64(self1-self0)/1e6/n, "client-cpu-ms/op")
	b.ReportMetric(float64(heap)/(1<<20), "peak-live-heap-MiB")
	if pods > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n/float64(pods)/1e3, "µs/pod")
	}
}

// processCPU returns the CPU time this process has used, its garbage
// collector's included: on a shared machine a benchmark's wall time
// says more about the neighbours than about the code.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakHeap samples the live heap (as the last collection found it) every
// millisecond until the returned function is called, which returns the
// largest sample above the first.
func peakHeap() func() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	var mu sync.Mutex
	var top uint64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			mu.Lock()
			top = max(top, s[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		return top - min(top, base)
	}
}

// parallelCreate creates objects with a few workers.
func parallelCreate(ctx context.Context, objs []client.Object, create func(client.Object) error) error {
	return parallel(ctx, len(objs), func(i int) error { return create(objs[i]) })
}

// parallel runs fn(0..n-1) on eight workers and returns the first error.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
