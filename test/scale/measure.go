package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/controller"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/source"
	"poolguard.dev/poolguard/test/bench"
	"poolguard.dev/poolguard/webhook"
)

// Measures are one phase's figures.
type Measures struct {
	Phase string
	// Pods is how many pods the cluster holds when measured.
	Pods int
	// RSS of the follower (admission and export) and of the leader (the
	// same, plus the allocator's controllers), and their Go heaps in use.
	FollowerRSS, LeaderRSS   int64
	FollowerHeap, LeaderHeap float64
	// Admission: pod creates through the API server, as clients see them,
	// and the pod handlers' own time per request (the follower's
	// controller_runtime_webhook_latency_seconds).
	AdmitP50, AdmitP99   time.Duration
	AdmitRate            float64
	MutateUS, ValidateUS float64
	// The API server's own share, for comparison: pod creates in an
	// opted-out namespace (no webhook is called), a GET of a pod and a
	// list of every IPPool from its watch cache, its and etcd's memory.
	BareP50, BareP99      time.Duration
	GetPod, ListPools     time.Duration
	APIServerRSS, EtcdRSS int64
	// Idle CPU of each replica per minute with nothing to admit: what
	// the caches, the controllers and the garbage collector's sweeps cost
	// at rest.
	FollowerIdleCPU, LeaderIdleCPU time.Duration
	// IndexRebuild is rebuilding the pool index from the cache, as
	// admission does when an IPPool changes (median).
	IndexRebuild time.Duration
	// Sweep is one garbage collection sweep, in this process, from a
	// cache built as the binary builds it (median of three), with its CPU
	// time and allocations.
	Sweep, SweepCPU         time.Duration
	SweepAllocs, SweepBytes uint64
	// LeaderSweepMean is the leader's own sweeps' mean duration while
	// idle (its metric), in seconds; zero when none ran in the window.
	LeaderSweepMean          float64
	Status, StatusPopulation time.Duration
	// ADD through the plugin binary on the probe node.
	AddP50, AddP99 time.Duration
	// DriftNamespace and DriftAll are `kubectl poolguard drift -n` of a
	// probe namespace and `-A`; WhoHad is `kubectl poolguard who-had`.
	DriftNamespace, DriftAll, WhoHad time.Duration
	// Etcd is the bytes poolguard's own objects take in etcd, by
	// resource, and EtcdPods the pods'.
	Etcd     map[string]int64
	EtcdPods int64
}

// Probe holds what both phases measure with.
type Probe struct {
	// Etcd is the etcd endpoint the API server stores in.
	Etcd       string
	Client     client.Client
	Follower   *Replica
	Leader     *Replica
	Kubeconfig string
	Plugin     string
	Dir        string
	// Local is this process's manager: its cache is built as the
	// binary's, for the in-process measures.
	Local   ctrl.Manager
	Sweeper *controller.Collector
	Status  *controller.PoolStatus
	// Idle is how long the replicas' CPU at rest is measured (a minute:
	// the garbage collector sweeps once a minute).
	Idle time.Duration
	// APIServer and Etcd are the control plane's processes.
	APIServer, EtcdPID int
	// AdmitPods and Adds size the batches.
	AdmitPods, Adds, Workers int
	Log                      io.Writer
}

// Measure takes every measure of a phase. pop is nil for the empty phase.
func (p *Probe) Measure(ctx context.Context, phase string, pop *Population) (*Measures, error) {
	m := &Measures{Phase: phase}
	if pop != nil {
		m.Pods = len(pop.Pods)
	}
	fmt.Fprintf(p.Log, "measuring %s\n", phase)
	pods, err := p.admit(ctx, phase, m)
	if err != nil {
		return nil, fmt.Errorf("admission: %w", err)
	}
	if err := p.controls(ctx, phase, m); err != nil {
		return nil, fmt.Errorf("API server controls: %w", err)
	}
	addrs, err := p.adds(ctx, pods, m)
	if err != nil {
		return nil, fmt.Errorf("ADD: %w", err)
	}
	if err := p.inProcess(ctx, m, pop); err != nil {
		return nil, err
	}
	who := addrs[0]
	if pop != nil && len(pop.Addresses) > 0 {
		who = pop.Addresses[len(pop.Addresses)/2]
	}
	if m.DriftNamespace, err = p.cli(ctx, "drift", "-n", pods[0].Namespace); err != nil {
		return nil, err
	}
	if m.DriftAll, err = p.cli(ctx, "drift", "-A"); err != nil {
		return nil, err
	}
	if m.WhoHad, err = p.cli(ctx, "who-had", who); err != nil {
		return nil, err
	}
	// Memory and idle CPU last, once the replicas have seen everything
	// above.
	if err := p.memory(ctx, m); err != nil {
		return nil, err
	}
	if err := p.idle(m); err != nil {
		return nil, err
	}
	if m.Etcd, m.EtcdPods, err = etcdBytes(ctx, p.Etcd); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return m, nil
}

// admit creates the phase's probe pods through admission and times them.
func (p *Probe) admit(ctx context.Context, phase string, m *Measures) ([]*corev1.Pod, error) {
	const nss = 10
	for i := 0; i < nss; i++ {
		if err := retryCreate(ctx, p.Client, probeNamespace(phase, i)); err != nil {
			return nil, err
		}
	}
	before, err := p.Follower.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, p.AdmitPods)
	lat := make([]time.Duration, p.AdmitPods)
	start := time.Now()
	err = parallel(ctx, p.AdmitPods, p.Workers, nil, func(ctx context.Context, i int) error {
		ns := probeNamespace(phase, i%nss)
		pod := Pod(ns, fmt.Sprintf("probe-%05d", i), i/nss)
		t := time.Now()
		if err := p.Client.Create(ctx, pod); err != nil {
			return err
		}
		lat[i] = time.Since(t)
		pods[i] = pod
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.AdmitRate = float64(p.AdmitPods) / time.Since(start).Seconds()
	m.AdmitP50, m.AdmitP99 = bench.Percentile(lat, 0.5), bench.Percentile(lat, 0.99)
	after, err := p.Follower.Metrics(ctx)
	if err != nil {
		return nil, err
	}
	perReq := func(path string) float64 {
		s0, c0 := histogram(before, "controller_runtime_webhook_latency_seconds", "webhook", path)
		s1, c1 := histogram(after, "controller_runtime_webhook_latency_seconds", "webhook", path)
		if c1 == c0 {
			return 0
		}
		return (s1 - s0) / float64(c1-c0) * 1e6
	}
	m.MutateUS, m.ValidateUS = perReq(webhook.PathMutatePod), perReq(webhook.PathValidatePod)
	if m.MutateUS == 0 || m.ValidateUS == 0 {
		return nil, fmt.Errorf("the follower served no pod admission (mutate %.0f µs, validate %.0f µs): is it the registered replica?", m.MutateUS, m.ValidateUS)
	}
	return pods, nil
}

// adds runs ADDs through the plugin binary, one at a time, on the probe
// node, for the first probe pods, and returns their addresses.
func (p *Probe) adds(ctx context.Context, pods []*corev1.Pod, m *Measures) ([]string, error) {
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": networkName, "type": "poolguard-ipam",
		"ipam": map[string]any{"type": "poolguard-ipam", "kubeconfig": p.Kubeconfig, "nodeName": probeNode, "lockDir": filepath.Join(p.Dir, "lock"), "history": true}})
	var lat []time.Duration
	var addrs []string
	for i := 0; i < p.Adds && i < len(pods); i++ {
		pod := pods[i]
		cid := fmt.Sprintf("%s-%d", pod.Namespace, i)
		cmd := exec.CommandContext(ctx, p.Plugin)
		cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + cid, "CNI_NETNS=/var/run/netns/scale-" + cid, "CNI_IFNAME=eth0",
			fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s", pod.Namespace, pod.Name, cid, pod.UID),
			"CNI_PATH=" + filepath.Dir(p.Plugin), "PATH=/usr/bin:/bin"}
		cmd.Stdin = bytes.NewReader(conf)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		t := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("ADD for %s/%s: %w: %s %s", pod.Namespace, pod.Name, err, out.String(), errOut.String())
		}
		lat = append(lat, time.Since(t))
		var res struct {
			IPs []struct{ Address string } `json:"ips"`
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.IPs) == 0 {
			return nil, fmt.Errorf("ADD for %s/%s printed no address: %q", pod.Namespace, pod.Name, out.String())
		}
		addrs = append(addrs, strings.Split(res.IPs[0].Address, "/")[0])
	}
	if len(lat) == 0 {
		return nil, fmt.Errorf("no ADD ran")
	}
	m.AddP50, m.AddP99 = bench.Percentile(lat, 0.5), bench.Percentile(lat, 0.99)
	return addrs, nil
}

// inProcess measures what runs inside the binary's controllers and
// admission, here, on a cache built as the binary's: the pool index
// rebuild, a garbage collection sweep and a pool status reconcile.
func (p *Probe) inProcess(ctx context.Context, m *Measures, pop *Population) error {
	reader := p.Local.GetClient()
	src := source.Native{Reader: reader}
	var ix []time.Duration
	for i := 0; i < 21; i++ {
		t := time.Now()
		if _, err := src.Snapshot(ctx); err != nil {
			return err
		}
		ix = append(ix, time.Since(t))
	}
	m.IndexRebuild = bench.Percentile(ix, 0.5)

	if _, err := p.Sweeper.Sweep(ctx); err != nil { // warms the informers
		return fmt.Errorf("sweep: %w", err)
	}
	type run struct {
		wall, cpu     time.Duration
		allocs, bytes uint64
	}
	var runs []run
	for i := 0; i < 3; i++ {
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		c0 := processCPU()
		t := time.Now()
		rep, err := p.Sweeper.Sweep(ctx)
		wall := time.Since(t)
		c1 := processCPU()
		runtime.ReadMemStats(&ms1)
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		if rep.ClaimsReleased+rep.SlotsReleased+rep.BlocksDeleted > 0 {
			return fmt.Errorf("the sweep freed something in a cluster without garbage: %+v", rep)
		}
		runs = append(runs, run{wall, c1 - c0, ms1.Mallocs - ms0.Mallocs, ms1.TotalAlloc - ms0.TotalAlloc})
	}
	slices.SortFunc(runs, func(a, b run) int { return int(a.wall - b.wall) })
	med := runs[1]
	m.Sweep, m.SweepCPU, m.SweepAllocs, m.SweepBytes = med.wall, med.cpu, med.allocs, med.bytes

	status := func(pool string) (time.Duration, error) {
		var ds []time.Duration
		for i := 0; i < 5; i++ {
			t := time.Now()
			if _, err := p.Status.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: pool}}); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(t))
		}
		return bench.Percentile(ds, 0.5), nil
	}
	var err error
	if m.Status, err = status(probePool); err != nil {
		return err
	}
	if pop != nil {
		if m.StatusPopulation, err = status(v4PoolName(0)); err != nil {
			return err
		}
	}
	return nil
}

// cli times one kubectl poolguard command, run in this process as the
// plugin's main runs it; exit 0 and 1 (found something) are answers.
func (p *Probe) cli(ctx context.Context, args ...string) (time.Duration, error) {
	var errOut bytes.Buffer
	t := time.Now()
	code := poolctl.Run(ctx, append([]string{"--kubeconfig", p.Kubeconfig}, args...), strings.NewReader(""), io.Discard, &errOut)
	d := time.Since(t)
	if code > 1 {
		return 0, fmt.Errorf("kubectl poolguard %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
	return d, nil
}

// memory reads the replicas' resident memory and heaps, the median of
// five samples a second apart, and the control plane's.
func (p *Probe) memory(ctx context.Context, m *Measures) error {
	sample := func(r *Replica) (int64, float64, error) {
		var rss []int64
		var heap float64
		for i := 0; i < 5; i++ {
			v, err := r.RSS()
			if err != nil {
				return 0, 0, err
			}
			rss = append(rss, v)
			time.Sleep(time.Second)
		}
		mf, err := r.Metrics(ctx)
		if err != nil {
			return 0, 0, err
		}
		heap, _ = gauge(mf, "go_memstats_heap_inuse_bytes", "", "")
		slices.Sort(rss)
		return rss[2], heap, nil
	}
	var err error
	if m.FollowerRSS, m.FollowerHeap, err = sample(p.Follower); err != nil {
		return err
	}
	if m.LeaderRSS, m.LeaderHeap, err = sample(p.Leader); err != nil {
		return err
	}
	if m.APIServerRSS, err = rssOf(p.APIServer); err != nil {
		return err
	}
	if m.EtcdRSS, err = rssOf(p.EtcdPID); err != nil {
		return err
	}
	return nil
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// controls measures the API server alone: pod creates where no webhook is
// called (an opted-out namespace), a GET of a pod and a list of every
// IPPool from the watch cache, as the plugin reads them.
func (p *Probe) controls(ctx context.Context, phase string, m *Measures) error {
	ns := probeNamespace(phase+"-bare", 0)
	ns.Labels[policy.LabelOptOut] = "true"
	delete(ns.Annotations, policy.AnnotationIPv4Pools)
	if err := retryCreate(ctx, p.Client, ns); err != nil {
		return err
	}
	n := p.AdmitPods / 2
	lat := make([]time.Duration, n)
	var first *corev1.Pod
	err := parallel(ctx, n, p.Workers, nil, func(ctx context.Context, i int) error {
		pod := Pod(ns, fmt.Sprintf("bare-%05d", i), 0)
		t := time.Now()
		if err := p.Client.Create(ctx, pod); err != nil {
			return err
		}
		lat[i] = time.Since(t)
		if _, frozen := pod.Annotations[policy.AnnotationProvenance]; frozen {
			return fmt.Errorf("pod %s/%s in an opted-out namespace was frozen: the webhook was called", pod.Namespace, pod.Name)
		}
		if i == 0 {
			first = pod
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.BareP50, m.BareP99 = bench.Percentile(lat, 0.5), bench.Percentile(lat, 0.99)
	var gets, lists []time.Duration
	for i := 0; i < 21; i++ {
		var pm metav1.PartialObjectMetadata
		pm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
		t := time.Now()
		if err := p.Client.Get(ctx, client.ObjectKeyFromObject(first), &pm, &client.GetOptions{Raw: &metav1.GetOptions{ResourceVersion: "0"}}); err != nil {
			return err
		}
		gets = append(gets, time.Since(t))
		var pools apiv1alpha1.IPPoolList
		t = time.Now()
		if err := p.Client.List(ctx, &pools, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}); err != nil {
			return err
		}
		lists = append(lists, time.Since(t))
	}
	m.GetPod, m.ListPools = bench.Percentile(gets, 0.5), bench.Percentile(lists, 0.5)
	return nil
}

// idle measures each replica's CPU over p.Idle in which nothing is asked
// of it, scaled to a minute, and the leader's garbage collection sweeps
// in that window (its poolguard_gc_sweep_duration_seconds).
func (p *Probe) idle(m *Measures) error {
	f0, l0 := p.Follower.CPU(), p.Leader.CPU()
	before, err := p.Leader.Metrics(context.Background())
	if err != nil {
		return err
	}
	time.Sleep(p.Idle)
	f1, l1 := p.Follower.CPU(), p.Leader.CPU()
	// The leader's own sweeps at this size: those of the quiet window.
	if after, err := p.Leader.Metrics(context.Background()); err == nil {
		s0, c0 := histogram(before, "poolguard_gc_sweep_duration_seconds", "", "")
		s1, c1 := histogram(after, "poolguard_gc_sweep_duration_seconds", "", "")
		if c1 > c0 {
			m.LeaderSweepMean = (s1 - s0) / float64(c1-c0)
		}
	}
	perMinute := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(time.Minute) / float64(p.Idle))
	}
	m.FollowerIdleCPU, m.LeaderIdleCPU = perMinute(f1-f0), perMinute(l1-l0)
	return nil
}
