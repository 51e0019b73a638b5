// Command poolguard-webhook runs poolguard's admission webhook (and, with the
// allocator enabled, its leader-elected controllers).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/zapr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	allocatorcontroller "poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/webhook"
	"poolguard.dev/poolguard/webhook/certrotator"
	"poolguard.dev/poolguard/webhook/exportserver"
	"poolguard.dev/poolguard/webhook/poolseed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "poolguard-webhook:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		certDir     string
		port        int
		metricsAddr string
		probeAddr   string
		leaderElect bool
		enforcement string
		modeFlag    string
		rot         = certrotator.Rotator{}
		allocOpts   allocatorcontroller.Options
		allocCtrls  bool
		excluded    []string
		// Who may call the webhook and read its metrics: see tls.go.
		auth          callerAuth
		metricsSecure bool
	)
	flag.StringVar(&certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory with the serving certificate (tls.crt, tls.key); a rotated certificate is picked up without restart.")
	flag.IntVar(&port, "webhook-port", 9443, "Port the admission webhook serves on.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS (the --cert-dir certificate) only to callers the API server authenticates and authorizes for get on /metrics; false: plain HTTP to anyone.")
	flag.StringVar(&auth.clientCAFile, "client-ca-file", "", "PEM CA bundle: when set, the webhook port requires a client certificate signed by it (the API server's, configured with its AdmissionConfiguration); re-read when the file changes. Empty: any caller is answered.")
	flag.StringVar(&auth.allowedNames, "client-allowed-names", "", "With --client-ca-file: comma-separated names (subject CN or DNS/URI/e-mail SAN) of which the client certificate must carry one; empty: any certificate the CA signed.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader among replicas for the controllers (admission is served by every replica).")
	flag.StringVar(&enforcement, "enforcement", string(webhook.Enforce), "enforce: deny violations; warn: admit them with a warning, a metric and an event.")
	flag.StringVar(&modeFlag, "mode", string(webhook.ModeNative), "native: check against poolguard's IPPools (its allocator and CNI plugin allocate); calico: check against Calico's IPPools (projectcalico.org/v3 or crd.projectcalico.org/v1, found by discovery) where Calico's CNI and IPAM allocate.")
	flag.Func("excluded-namespaces", "Comma-separated namespaces the webhook configurations exclude (the chart passes kube-system, the release namespace and webhook.excludedNamespaces): a request about one cannot come from the API server, so it records no event and no metric.", func(v string) error {
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				excluded = append(excluded, ns)
			}
		}
		return nil
	})
	// Without cert-manager: keep the certificate in a Secret (see package
	// certrotator). Off unless --cert-secret is set.
	flag.StringVar(&rot.SecretName, "cert-secret", "", "Keep the CA and serving certificate in this Secret of the pod's namespace (POD_NAMESPACE), renew them, write them into --cert-dir and inject the CA into the webhook configurations; empty: certificates come from elsewhere (cert-manager).")
	flag.StringVar(&rot.ServiceName, "cert-service", "poolguard-webhook", "With --cert-secret: the webhook's Service, whose DNS names the certificate carries.")
	flag.StringVar(&rot.WebhookConfigurationName, "cert-webhook-configuration", "poolguard", "With --cert-secret: the Mutating- and ValidatingWebhookConfiguration whose caBundle is kept.")
	flag.DurationVar(&rot.CAValidity, "cert-ca-validity", 10*365*24*time.Hour, "With --cert-secret: lifetime of a new CA.")
	flag.DurationVar(&rot.CertValidity, "cert-validity", 90*24*time.Hour, "With --cert-secret: lifetime of a new serving certificate.")
	// Native mode: the allocator's garbage collector and IPPool status
	// controller, leader-elected (see package allocator/controller).
	flag.BoolVar(&allocCtrls, "allocator-controllers", false, "Run the allocator's leader-elected controllers: garbage collection of addresses whose pod is gone and IPPool status (native mode; off in Calico mode).")
	flag.DurationVar(&allocOpts.GracePeriod, "gc-grace-period", allocatorcontroller.DefaultGracePeriod, "How long an allocation must look orphaned before it is freed; at least "+allocatorcontroller.MinGracePeriod.String()+" and at least twice the CNI plugin's timeout (ipam.timeout).")
	flag.DurationVar(&allocOpts.Interval, "gc-interval", allocatorcontroller.DefaultInterval, "How often the garbage collector sweeps.")
	flag.DurationVar(&allocOpts.HistoryRetention, "history-retention", allocatorcontroller.DefaultHistoryRetention, "With --allocator-controllers: how long the attribution history keeps released allocations (IPAMHistory objects), at least "+allocatorcontroller.MinHistoryRetention.String()+"; expired by whole UTC days.")
	flag.Func("history", "With --allocator-controllers: record the attribution history (true, the default), or only let released claims go (false).", func(v string) error {
		on, err := strconv.ParseBool(v)
		allocOpts.HistoryOff = !on
		return err
	})
	// The live export for firewalls (see package webhook/exportserver),
	// on every replica.
	var exportOpts exportserver.Options
	flag.StringVar(&exportOpts.BindAddress, "export-bind-address", exportserver.DefaultBindAddress, "Address the live export for firewalls (pool CIDRs, addresses in use per pool and per namespace) serves HTTPS on, with the --cert-dir certificate; 0 disables it.")
	flag.StringVar(&exportOpts.ClientCAFile, "export-client-ca-file", "", "PEM CA bundle: the export also accepts client certificates signed by it (CN the user, O the groups, authorized by SubjectAccessReview like a token); re-read when the file changes. Empty: bearer tokens only.")
	flag.BoolVar(&exportOpts.Addresses, "export-addresses", true, "Native mode: export the addresses in use from poolguard's IPAMClaims; false when another IPAM allocates (the address lists then answer 501). Calico mode never has them.")
	flag.StringVar(&exportOpts.ReaderRole, "export-reader-role", exportserver.DefaultReaderRole, "The ClusterRole that grants the export's lists, named in its 403 answers (the chart's <release>-export-reader).")
	// The chart's `ippools` value: applied by the elected replica once it
	// serves, because helm cannot create them before the webhook does.
	seedConfigMap := flag.String("ippools-configmap", "", "Apply the IPPools listed in this ConfigMap of the pod's namespace (POD_NAMESPACE, key "+poolseed.DataKey+") once the webhook serves, and again when it changes (elected replica; see package webhook/poolseed); empty: none.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	// zap through zapr, with controller-runtime's --zap-* flags.
	logger := zap.NewRaw(zap.UseFlagOptions(&zapOpts))
	defer func() { _ = logger.Sync() }()
	ctrl.SetLogger(zapr.NewLogger(logger))
	log := ctrl.Log.WithName("setup")

	mode, err := webhook.ParseEnforcement(enforcement)
	if err != nil {
		return err
	}
	if allocCtrls {
		// Refused at start: a crash-looping replica is seen at once,
		// freed addresses of running ADDs only much later.
		if err := allocOpts.Validate(); err != nil {
			return err
		}
	}
	routeStdLog(ctrl.Log.WithName("http"))
	webhookTLS, err := auth.webhookTLSOpts(ctrl.Log.WithName("clientauth"))
	if err != nil {
		return err
	}
	scheme, err := webhook.NewScheme()
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if rot.SecretName != "" {
		// The webhook server loads its certificate when it starts, so the
		// first round runs before the manager does.
		if err := bootstrapCertificates(cfg, &rot, certDir); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions(metricsAddr, certDir, metricsSecure),
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "poolguard.ipam.poolguard.dev",
		// The chart sets POD_NAMESPACE from the downward API; empty falls
		// back to the in-cluster service account's namespace.
		LeaderElectionNamespace: os.Getenv("POD_NAMESPACE"),
		WebhookServer:           crwebhook.NewServer(crwebhook.Options{Port: port, CertDir: certDir, TLSOpts: webhookTLS}),
		// Lean caches: no managedFields anywhere, and of pods and nodes
		// only what their readers use (see the function).
		Cache: allocatorcontroller.CacheOptions(),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	poolMode, err := webhook.ParseMode(modeFlag)
	if err != nil {
		return err
	}
	if poolMode == webhook.ModeCalico && (allocCtrls || *seedConfigMap != "") {
		return fmt.Errorf("--mode=calico: the allocator's controllers and --ippools-configmap work on poolguard's own IPPools; Calico's pools are Calico's")
	}
	if err := webhook.Setup(mgr, webhook.Options{Mode: poolMode, Enforcement: mode, ExcludedNamespaces: excluded}); err != nil {
		return err
	}
	exportOpts.CertDir, exportOpts.Mode = certDir, poolMode
	if err := exportserver.Setup(mgr, exportOpts); err != nil {
		return err
	}
	if allocCtrls {
		if err := allocatorcontroller.Setup(mgr, allocOpts); err != nil {
			return err
		}
	}
	if *seedConfigMap != "" {
		if err := poolseed.Setup(mgr, os.Getenv("POD_NAMESPACE"), *seedConfigMap); err != nil {
			return err
		}
	}
	if rot.SecretName != "" {
		if err := mgr.Add(&rot); err != nil {
			return err
		}
	}
	log.Info("starting", "version", version, "mode", poolMode, "enforcement", mode, "webhookPort", port, "certDir", certDir,
		"clientCAFile", auth.clientCAFile, "metricsSecure", metricsSecure, "exportBindAddress", exportOpts.BindAddress, "exportClientCAFile", exportOpts.ClientCAFile)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// bootstrapCertificates runs the rotator's first round with a direct client,
// retrying for a minute: a replica starting while the API server is briefly
// unreachable should wait, not crash-loop.
func bootstrapCertificates(cfg *rest.Config, rot *certrotator.Rotator, certDir string) error {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	rot.Client, rot.Namespace, rot.CertDir = c, os.Getenv("POD_NAMESPACE"), certDir
	if err := rot.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		err := rot.Ensure(ctx)
		if err == nil {
			return nil
		}
		ctrl.Log.WithName("certrotator").Error(err, "bootstrapping the webhook certificate; retrying")
		select {
		case <-ctx.Done():
			return fmt.Errorf("bootstrapping the webhook certificate: %w", err)
		case <-time.After(2 * time.Second):
		}
	}
}
