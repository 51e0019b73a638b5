package certmanager

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

// Options say how to run cert-manager. The zero value is a cert-manager
// watching all namespaces, with the controller binary's defaults, logging
// nothing.
type Options struct {
	// Namespace limits the controllers and the CA injector to one
	// namespace, as the binaries' --namespace does; ClusterIssuers are then
	// not reconciled. Empty watches all namespaces.
	Namespace string

	// ClusterResourceNamespace is where ClusterIssuers' Secrets are read
	// from, the binary's --cluster-resource-namespace. cert-manager's chart
	// sets it to its own release namespace; empty means the binary's
	// default, kube-system.
	ClusterResourceNamespace string

	// Workers is the number of workers per controller, the binary's
	// --concurrent-workers; 0 means its default, 5.
	Workers int

	// Logger receives cert-manager's logs, at cert-manager's verbosity
	// levels (pkg/logs: mostly V(2) for information and V(4) for debug),
	// and the CA injector's manager's, at controller-runtime's. The zero
	// Logger discards them.
	//
	// Two kinds of log are not routed here, as in the binaries they go to
	// process-wide sinks: client-go's and cert-manager's klog output (klog
	// shows only errors unless its -v is raised), and the CA injector's
	// reconcilers, which log through controller-runtime's global ctrl.Log
	// (set by ctrl.SetLogger, which this package leaves to the process).
	Logger logr.Logger
}

// Defaults of cert-manager's controller binary (its ControllerConfiguration
// defaults, internal/apis/config/controller/v1alpha1/defaults.go), which a
// Deployment of its chart runs with unless overridden.
const (
	defaultClusterResourceNamespace = "kube-system"
	defaultWorkers                  = 5
	defaultKubernetesAPIQPS         = 20
	defaultKubernetesAPIBurst       = 50
)

// Start runs cert-manager's controllers and CA injector against the API
// server cfg points at until stop is called or ctx ends. cert-manager's
// CRDs must be installed (InstallCRDs).
//
// Start returns once everything is constructed; the controllers then wait
// for their informers to sync before reconciling. stop cancels them, waits
// for the controllers, their informers and the injector's manager to end,
// and returns the first error a controller or the injector ended with
// before being stopped (one failing stops the rest, as in the binaries).
// Calling stop more than once is safe.
//
// One kind of goroutine outlives stop: cert-manager's
// controller.ContextFactory starts an event broadcaster for each context it
// builds (one per controller, three goroutines each) and offers no way to
// shut them down; the binary leaves them to process exit. They stay idle.
func Start(ctx context.Context, cfg *rest.Config, opts Options) (stop func() error, err error) {
	if opts.ClusterResourceNamespace == "" {
		opts.ClusterResourceNamespace = defaultClusterResourceNamespace
	}
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	r := newRunner(ctx)
	defer func() {
		if err != nil {
			_ = r.stop()
		}
	}()
	if err := startControllers(r, cfg, opts); err != nil {
		return nil, fmt.Errorf("cert-manager controller: %w", err)
	}
	if err := startCAInjector(r, cfg, opts); err != nil {
		return nil, fmt.Errorf("cert-manager cainjector: %w", err)
	}
	return r.stop, nil
}

// runner runs goroutines until stopped, as the binaries' errgroups do: the
// first to fail stops the others.
type runner struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	err      error
	stopped  bool
	stopOnce sync.Once
}

func newRunner(parent context.Context) *runner {
	ctx, cancel := context.WithCancel(parent)
	return &runner{ctx: ctx, cancel: cancel}
}

// goRun runs f in a goroutine, and fails with the error it returns.
func (r *runner) goRun(name string, f func(context.Context) error) {
	r.wg.Go(func() {
		if err := f(r.ctx); err != nil {
			r.fail(fmt.Errorf("%s: %w", name, err))
		}
	})
}

// fail records err as the runner's error and stops everything else, unless
// the runner is already stopping: an error while stopping, such as an
// informer that never synced, is not a failure.
func (r *runner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	r.err = err
	r.cancel()
}

func (r *runner) stop() error {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.cancel()
		r.wg.Wait()
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
