package scale

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/test/bench"
	"poolguard.dev/poolguard/test/chartwebhook"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// Sizes are flags: go test ./test/scale -run '^$' -bench Scale -benchtime 1x -args -nodes=5000 ...
var (
	flagNodes      = flag.Int("nodes", Small.Nodes, "Nodes of the simulated cluster.")
	flagNamespaces = flag.Int("namespaces", Small.Namespaces, "Namespaces.")
	flagPools      = flag.Int("pools", Small.Pools, "IPPools (half IPv4 team pools, the rest IPv6).")
	flagPods       = flag.Int("pods", Small.Pods, "Pods, created through admission.")
	flagWorkers    = flag.Int("workers", 32, "Concurrent clients populating the cluster.")
	flagAdmit      = flag.Int("admit-pods", 1000, "Pods per phase whose admission is timed (16 clients).")
	flagAdds       = flag.Int("adds", 100, "CNI ADDs per phase through the plugin binary, one at a time.")
	flagFull       = flag.Bool("full", false, "Kubernetes' envelope: 5,000 nodes, 10,000 namespaces, 1,000 IPPools, 150,000 pods (overrides the sizes).")
)

// BenchmarkScale measures poolguard on an empty cluster, populates the
// cluster to the shape, measures again and prints both with their ratios.
func BenchmarkScale(b *testing.B) {
	shape := Shape{Nodes: *flagNodes, Namespaces: *flagNamespaces, Pools: *flagPools, Pods: *flagPods}
	if *flagFull {
		shape = Full
	}
	if err := shape.Validate(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		run(b, shape, *flagAdmit, *flagAdds, time.Minute, nil)
	}
}

// run is one scale run; a test runs it small (TestScaleHarness).
// after, when set, runs with a client before the control plane stops.
func run(tb testing.TB, shape Shape, admitPods, adds int, idle time.Duration, after func(client.Client)) (pop *Population, empty, full *Measures) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	ctrl.SetLogger(logr.Discard())
	opts, err := chartwebhook.HarnessOptions()
	if err != nil {
		tb.Fatal(err)
	}
	env, err := harness.Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			tb.Error(err)
		}
	}()
	dir := tb.TempDir()
	bin, err := BuildWebhook(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if err := netlab.BuildPlugin(dir); err != nil {
		tb.Fatal(err)
	}
	kubeconfig, cfg, err := harness.AdminKubeconfig(env.Env, "scale-admin", dir)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := harness.Client(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: harness.ServiceNamespace}}); err != nil {
		tb.Fatal(err)
	}

	// The leader first, alone, so that it wins the election; then the
	// follower, on the port the API server calls.
	leader, err := StartReplica(env, bin, kubeconfig, dir, "leader", 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer leader.Stop()
	if err := waitLease(ctx, c); err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(env.WebhookAddr)
	webhookPort, _ := strconv.Atoi(port)
	follower, err := StartReplica(env, bin, kubeconfig, dir, "follower", webhookPort)
	if err != nil {
		tb.Fatal(err)
	}
	defer follower.Stop()

	// This process's manager, with a cache built as the binary's, for
	// the in-process measures.
	scheme, _ := harness.Scheme()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0", Cache: controller.CacheOptions()})
	if err != nil {
		tb.Fatal(err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.IPAMBlock{}, controller.PoolField, func(o client.Object) []string {
		return []string{o.(*v1alpha1.IPAMBlock).Spec.Pool}
	}); err != nil {
		tb.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	go func() { _ = mgr.Start(mctx) }()
	lean, err := kubestore.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	store := kubestore.Store{Client: lean, History: true}

	procs, err := bench.FindProcesses()
	if err != nil {
		tb.Fatal(err)
	}
	probe := &Probe{
		APIServer: procs.APIServer, EtcdPID: procs.Etcd,
		Etcd: env.Env.ControlPlane.Etcd.URL.String(), Client: c, Follower: follower, Leader: leader,
		Kubeconfig: kubeconfig, Plugin: filepath.Join(dir, "poolguard-ipam"), Dir: dir, Local: mgr,
		Sweeper:   &controller.Collector{Reader: mgr.GetCache(), Live: mgr.GetAPIReader(), Store: store, GracePeriod: controller.DefaultGracePeriod, Log: logr.Discard()},
		Status:    &controller.PoolStatus{Client: mgr.GetClient(), Store: store, Log: logr.Discard()},
		AdmitPods: admitPods, Adds: adds, Workers: 16, Log: os.Stderr, Idle: idle,
	}
	if err := retryCreate(ctx, c, probePoolObject()); err != nil {
		tb.Fatal(err)
	}
	if err := retryCreate(ctx, c, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: probeNode, Labels: map[string]string{"kubernetes.io/hostname": probeNode}}}); err != nil {
		tb.Fatal(err)
	}
	if empty, err = probe.Measure(ctx, "empty", nil); err != nil {
		tb.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "populating: %+v\n", shape)
	if pop, err = Populate(ctx, c, store, shape, *flagWorkers, os.Stderr); err != nil {
		tb.Fatal(err)
	}
	// Let the replicas' and this process's informers catch up and the
	// leader's status controller go quiet before measuring.
	if err := settle(ctx, mgr.GetClient(), pop.Claims+adds, leader, procs.APIServer); err != nil {
		tb.Fatal(err)
	}
	if full, err = probe.Measure(ctx, "full", pop); err != nil {
		tb.Fatal(err)
	}
	PrintTable(os.Stdout, shape, pop, empty, full)
	if after != nil {
		after(c)
	}
	return pop, empty, full
}

// waitLease waits until a replica holds the controllers' lease.
func waitLease(ctx context.Context, c client.Client) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var l coordinationv1.Lease
		err := c.Get(ctx, client.ObjectKey{Namespace: harness.ServiceNamespace, Name: "poolguard.ipam.poolguard.dev"}, &l)
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("no replica became leader in 2m")
}

// settle waits until this process's cache holds every claim, then until
// the leader has used no more than 5% of a CPU, and the API server no more
// than 20%, for five seconds.
func settle(ctx context.Context, r client.Reader, claims int, leader *Replica, apiserver int) error {
	deadline := time.Now().Add(15 * time.Minute)
	for {
		var l v1alpha1.IPAMClaimList
		if err := r.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
			return err
		}
		if len(l.Items) >= claims {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cache holds %d claims of %d after 15m", len(l.Items), claims)
		}
		time.Sleep(time.Second)
	}
	for time.Now().Before(deadline) {
		c0, a0 := leader.CPU(), bench.CPUOf(apiserver)
		time.Sleep(5 * time.Second)
		if leader.CPU()-c0 < 250*time.Millisecond && bench.CPUOf(apiserver)-a0 < time.Second {
			return nil
		}
	}
	return fmt.Errorf("the leader is still busy after 15m")
}
