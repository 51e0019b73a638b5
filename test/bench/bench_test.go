package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// Flags size the run; the defaults keep `make bench` to a few minutes on
// two cores. Pass them after -args.
var (
	flagPods    = flag.Int("pods", 300, "pods created per setup and round")
	flagWorkers = flag.Int("workers", 16, "concurrent clients creating pods")
	flagRounds  = flag.Int("rounds", 5, "rounds; each runs every setup once, in rotated order")
	flagProfile = flag.String("apiserver-profile", "", "directory to write a 3 s CPU profile of the API server into, per setup, taken as its first-round run starts (make -pods large enough to cover it)")
)

// BenchmarkAdmission creates the same pods under each admission setup on
// one API server and prints the table. It is a benchmark, not a test: it
// asserts nothing about speed. Run it once: -bench Admission -benchtime 1x.
func BenchmarkAdmission(b *testing.B) {
	if err := netlab.CheckRootFree(Ranges...); err != nil {
		b.Fatal(err)
	}
	// A production-shaped logger that writes nowhere: controller-runtime
	// builds a request logger per review, and that cost is real.
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	ctx := context.Background()
	noop := &Noop{}
	opts := harness.Options{Webhook: true, ExtraHandlers: noop.Handlers()}
	if *flagProfile != "" {
		opts.APIServerArgs = map[string]string{"profiling": "true"}
	}
	env, err := harness.Start(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			b.Error(err)
		}
	}()

	world := NewWorld("bench-")
	if err := world.Create(ctx, env.Client); err != nil {
		b.Fatal(err)
	}
	setups, err := setupsFor(ctx, env, noop, world)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(loadConfig(env.Config))
	if err != nil {
		b.Fatal(err)
	}
	procs, err := FindProcesses()
	if err != nil {
		b.Fatal(err)
	}

	results := make([]*Result, len(setups.All))
	for i, s := range setups.All {
		results[i] = &Result{Setup: s}
	}
	n, workers := *flagPods, *flagWorkers
	b.ResetTimer()
	for b.Loop() {
		for round := 0; round < *flagRounds; round++ {
			for k := range results {
				r := results[(round+k)%len(results)]
				profile := ""
				if *flagProfile != "" && round == 0 {
					profile = filepath.Join(*flagProfile, r.Setup.Name+".pprof")
				}
				run, err := measure(ctx, env, setups, r.Setup, world, cs, procs, n, workers, profile)
				if err != nil {
					b.Fatalf("round %d, setup %s: %v", round, r.Setup.Name, err)
				}
				r.Runs = append(r.Runs, run)
			}
		}
	}
	b.StopTimer()
	PrintTable(os.Stdout, results, n, workers)
	PrintAims(os.Stdout, results)
	for _, r := range results {
		b.ReportMetric(r.PodsPerSecond(), r.Setup.Name+"-pods/s")
		b.ReportMetric(ms(r.Percentile(0.99)), r.Setup.Name+"-p99-ms")
		b.ReportMetric(r.CPUTotalPerPod(), r.Setup.Name+"-cpu-ms/pod")
	}
}

// measure switches to a setup, warms it up (connections, CEL programs,
// caches), starts from no pods and times n creates.
func measure(ctx context.Context, env *harness.Env, setups *Setups, s *Setup, world *World, cs kubernetes.Interface, procs Processes, n, workers int, profile string) (Run, error) {
	if err := setups.Switch(ctx, s); err != nil {
		return Run{}, err
	}
	if _, err := Create(ctx, cs, world.Pods(4*workers), workers); err != nil {
		return Run{}, fmt.Errorf("warming up: %w", err)
	}
	if err := world.DeletePods(ctx, cs); err != nil {
		return Run{}, err
	}
	pods := world.Pods(n)
	// Let the deletes' aftermath (watch fan-out) settle so it is not billed
	// to the run.
	time.Sleep(time.Second)
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- ProfileAPIServer(ctx, env.Config, 3, profile) }()
	} else {
		profiled <- nil
	}
	before := procs.Sample()
	run, err := Create(ctx, cs, pods, workers)
	if err != nil {
		return Run{}, err
	}
	run.CPU = procs.Sample().Sub(before)
	if err := <-profiled; err != nil {
		return Run{}, err
	}
	return run, world.DeletePods(ctx, cs)
}

// loadConfig is the pod creators' client configuration: protobuf, as
// controllers speak it, and no client-side rate limit, so the server is
// what is measured.
func loadConfig(c *rest.Config) *rest.Config {
	cfg := rest.CopyConfig(c)
	cfg.QPS = -1
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.WarningHandler = rest.NoWarnings{}
	return cfg
}

// setupsFor reads poolguard's configurations as envtest installed them and
// derives the setups; the admission policies are dropped, with a note, when
// this API server does not serve them.
func setupsFor(ctx context.Context, env *harness.Env, noop *Noop, world *World) (*Setups, error) {
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := env.Client.Get(ctx, client.ObjectKey{Name: harness.WebhookName}, &m); err != nil {
		return nil, err
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: harness.WebhookName}, &v); err != nil {
		return nil, err
	}
	setups, err := NewSetups(&m, &v, env.Client, noop, world.Pod(0))
	if err != nil {
		return nil, err
	}
	dc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return nil, err
	}
	res, err := dc.Discovery().ServerResourcesForGroupVersion(admissionregistrationv1.SchemeGroupVersion.String())
	if err != nil {
		return nil, err
	}
	served := slices.ContainsFunc(res.APIResources, func(r metav1.APIResource) bool { return r.Name == "mutatingadmissionpolicies" })
	if !served {
		fmt.Fprintln(os.Stdout, "note: this kube-apiserver does not serve admissionregistration.k8s.io/v1 MutatingAdmissionPolicy; setup (d) skipped")
		setups.All = slices.DeleteFunc(setups.All, func(s *Setup) bool { return s.Name == "policies" })
	}
	return setups, nil
}
