// Package harness starts poolguard's local control plane for tests, benchmarks
// and the demo: a real kube-apiserver and etcd built into bin/ by the
// Makefile, poolguard's CRDs, and optionally the webhook served over TLS and
// registered through real webhook configurations.
package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	allocv1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/webhook"
	"poolguard.dev/poolguard/webhook/clientauth"
)

// Names used for the webhook's configurations and its (notional) Service.
const (
	WebhookName      = "poolguard"
	ServiceName      = "poolguard-webhook"
	ServiceNamespace = "poolguard-system"
)

// ExcludedNamespaces are left out of the webhook configurations the harness
// registers, as the chart leaves out kube-system and its own namespace.
var ExcludedNamespaces = []string{"kube-system", ServiceNamespace}

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BinDir is where the Makefile builds the pinned tools.
func BinDir() string { return filepath.Join(RepoRoot(), "bin") }

// CalicoCRDDir holds a CRD for Calico's IPPool in group (projectcalico.org
// or crd.projectcalico.org), written from Calico's documented fields.
func CalicoCRDDir(group string) string {
	return filepath.Join(RepoRoot(), "test", "calico", "crds", group)
}

// crdDirs are the CRDs the control plane starts with.
func crdDirs(o Options) []string {
	if o.Mode == webhook.ModeCalico {
		return o.ExtraCRDDirs
	}
	return append([]string{CRDDir()}, o.ExtraCRDDirs...)
}

// CRDDir holds poolguard's CRDs.
func CRDDir() string { return filepath.Join(RepoRoot(), "charts", "poolguard", "crds") }

// Options say what to start.
type Options struct {
	// Webhook starts poolguard's admission webhook in-process and registers
	// it; otherwise only the control plane and the CRDs start.
	Webhook bool
	// ExternalWebhook registers the webhook configurations and writes a
	// serving certificate (Env.CertDir) like Webhook, but starts no
	// webhook: the caller serves at Env.WebhookAddr, e.g. with the
	// poolguard-webhook binary.
	ExternalWebhook bool
	// Mutating and Validating, when set, are registered instead of
	// webhook.Configurations, e.g. the chart's as helm renders them.
	Mutating   *admissionregistrationv1.MutatingWebhookConfiguration
	Validating *admissionregistrationv1.ValidatingWebhookConfiguration
	// Enforcement is passed to the webhook.
	Enforcement webhook.Enforcement
	// Mode is the webhook's mode; in ModeCalico poolguard's own CRDs are
	// not installed (pass Calico's in ExtraCRDDirs, see CalicoCRDDir).
	Mode webhook.Mode
	// ExtraCRDDirs are installed with poolguard's CRDs.
	ExtraCRDDirs []string
	// ExtraHandlers are served by the webhook's server next to poolguard's
	// own handlers, by path, over the same TLS listener. Benchmarks use it
	// for a no-op webhook, so that the only difference from poolguard's is
	// the handler itself. Only used with Webhook.
	ExtraHandlers map[string]http.Handler
	// APIServerArgs are extra kube-apiserver flags (name without dashes,
	// value), e.g. "profiling": "true" for benchmarks that profile it.
	APIServerArgs map[string]string
	// ClientAuth, when set, makes the API server present a client
	// certificate to the webhook and the in-process webhook require one
	// (see ClientAuth). Needs Webhook or ExternalWebhook.
	ClientAuth *ClientAuth
}

// Env is a running local control plane.
type Env struct {
	// Config reaches the API server as an admin.
	Config *rest.Config
	// Client is a client with poolguard's scheme.
	Client client.Client
	// Env is the envtest environment.
	Env *envtest.Environment
	// CertDir is the webhook's serving certificate directory (tls.crt,
	// tls.key), as the chart mounts it.
	CertDir string
	// WebhookAddr is where the API server calls the webhook (host:port);
	// empty without Options.Webhook or Options.ExternalWebhook.
	WebhookAddr string
	// Manager runs the webhook; nil without Options.Webhook. Benchmarks
	// reach the registered handlers through its webhook server's mux.
	Manager manager.Manager
	// ClientCAFile is the CA bundle the webhook trusts for client
	// certificates (for an external webhook's --client-ca-file); empty
	// without Options.ClientAuth.
	ClientCAFile string

	// authDir holds the API server's admission configuration; removed by
	// Stop.
	authDir string

	cancel context.CancelFunc
	done   chan error
}

// checkBinaries fails with the command to run when the tools are missing.
func checkBinaries() error {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(BinDir(), b)); err != nil {
			return fmt.Errorf("%s not found in %s: run 'make tools' (or 'make test', which builds it) first", b, BinDir())
		}
	}
	return nil
}

// Start starts the control plane and, when asked, the webhook. Call Stop,
// even when a test fails.
func Start(o Options) (*Env, error) {
	if err := checkBinaries(); err != nil {
		return nil, err
	}
	scheme, err := webhook.NewScheme()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: BinDir(),
		CRDDirectoryPaths:     crdDirs(o),
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	if len(o.APIServerArgs) > 0 {
		args := te.ControlPlane.GetAPIServer().Configure()
		for k, v := range o.APIServerArgs {
			args.Set(k, v)
		}
	}
	if o.Webhook || o.ExternalWebhook {
		mutating, validating := webhook.Configurations(webhook.ConfigOptions{
			Name:               WebhookName,
			ServiceName:        ServiceName,
			ServiceNamespace:   ServiceNamespace,
			ExcludedNamespaces: ExcludedNamespaces,
			Calico:             o.Mode == webhook.ModeCalico,
		})
		if o.Mutating != nil {
			mutating = o.Mutating.DeepCopy()
		}
		if o.Validating != nil {
			validating = o.Validating.DeepCopy()
		}
		// envtest turns each Service reference into https://host:port/<path>;
		// it adds the slash itself.
		for i := range mutating.Webhooks {
			trimSlash(mutating.Webhooks[i].ClientConfig.Service.Path)
		}
		for i := range validating.Webhooks {
			trimSlash(validating.Webhooks[i].ClientConfig.Service.Path)
		}
		te.WebhookInstallOptions = envtest.WebhookInstallOptions{
			LocalServingHost:   "127.0.0.1",
			MutatingWebhooks:   []*admissionregistrationv1.MutatingWebhookConfiguration{mutating},
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{validating},
		}
	}
	var authDir, clientCAFile string
	started := false
	if o.ClientAuth != nil {
		if !o.Webhook && !o.ExternalWebhook {
			return nil, ErrClientAuthWithoutWebhook
		}
		if authDir, err = os.MkdirTemp("", "poolguard-apiserver-auth-"); err != nil {
			return nil, err
		}
		// Every failure below returns without an Env to Stop.
		defer func() {
			if !started {
				_ = os.RemoveAll(authDir)
			}
		}()
		if clientCAFile, err = o.ClientAuth.configure(te, authDir); err != nil {
			return nil, err
		}
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", BinDir(), err)
	}
	env := &Env{Config: cfg, Env: te, ClientCAFile: clientCAFile, authDir: authDir}
	env.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	wio := &te.WebhookInstallOptions
	if o.Webhook || o.ExternalWebhook {
		env.CertDir = wio.LocalServingCertDir
		env.WebhookAddr = net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))
	}
	if !o.Webhook {
		started = true
		return env, nil
	}
	var tlsOpts []func(*tls.Config)
	if o.ClientAuth != nil {
		opt, err := clientauth.Config{CAFile: clientCAFile, AllowedNames: o.ClientAuth.AllowedNames, Log: ctrl.Log.WithName("clientauth")}.TLSOption()
		if err != nil {
			_ = te.Stop()
			return nil, err
		}
		tlsOpts = append(tlsOpts, opt)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "127.0.0.1:0",
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host:    wio.LocalServingHost,
			Port:    wio.LocalServingPort,
			CertDir: wio.LocalServingCertDir,
			TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	if err := webhook.Setup(mgr, webhook.Options{Mode: o.Mode, Enforcement: o.Enforcement, ExcludedNamespaces: ExcludedNamespaces}); err != nil {
		_ = te.Stop()
		return nil, err
	}
	for path, h := range o.ExtraHandlers {
		mgr.GetWebhookServer().Register(path, h)
	}
	env.Manager = mgr
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	env.done = make(chan error, 1)
	go func() { env.done <- mgr.Start(ctx) }()
	if err := waitServing(net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort)), 30*time.Second); err != nil {
		_ = env.Stop()
		return nil, err
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		_ = env.Stop()
		return nil, errors.New("webhook informers did not sync")
	}
	started = true
	return env, nil
}

func trimSlash(p *string) { *p = strings.TrimPrefix(*p, "/") }

// waitServing waits until the webhook's TLS port accepts connections.
func waitServing(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		// A full TLS handshake, so the server logs no aborted handshake;
		// the certificate is checked by the API server, not here.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook did not listen on %s within %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the webhook and the control plane.
func (e *Env) Stop() error {
	var errs []error
	if e.cancel != nil {
		e.cancel()
		if err := <-e.done; err != nil {
			errs = append(errs, fmt.Errorf("webhook: %w", err))
		}
	}
	if err := e.Env.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("control plane: %w", err))
	}
	if e.authDir != "" {
		if err := os.RemoveAll(e.authDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Scheme knows the webhook's types and the allocator's objects.
func Scheme() (*kruntime.Scheme, error) {
	s, err := webhook.NewScheme()
	if err != nil {
		return nil, err
	}
	return s, allocv1alpha1.AddToScheme(s)
}

// Client returns a controller-runtime client that knows poolguard's and
// the allocator's types, for tests that create and inspect objects.
func Client(cfg *rest.Config) (client.Client, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// AdminKubeconfig writes dir/kubeconfig for a cluster administrator named
// name (group system:masters) without client-side rate limits, as the
// node plugin, the webhook binary and the kubectl plugin run in tests, and
// returns its path and its configuration.
func AdminKubeconfig(te *envtest.Environment, name, dir string) (string, *rest.Config, error) {
	u, err := te.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, &rest.Config{QPS: -1})
	if err != nil {
		return "", nil, err
	}
	b, err := u.KubeConfig()
	if err != nil {
		return "", nil, err
	}
	p := filepath.Join(dir, "kubeconfig")
	return p, u.Config(), os.WriteFile(p, b, 0o600)
}
