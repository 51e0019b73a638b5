// Command poolguard-webhook runs poolguard's admission webhook (and, with the
// allocator enabled, its leader-elected controllers).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/go-logr/zapr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"poolguard.dev/poolguard/webhook"
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
	)
	flag.StringVar(&certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory with the serving certificate (tls.crt, tls.key); a rotated certificate is picked up without restart.")
	flag.IntVar(&port, "webhook-port", 9443, "Port the admission webhook serves on.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader among replicas for the controllers (admission is served by every replica).")
	flag.StringVar(&enforcement, "enforcement", string(webhook.Enforce), "enforce: deny violations; warn: admit them with a warning, a metric and an event.")
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
	scheme, err := webhook.NewScheme()
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "poolguard.ipam.poolguard.dev",
		// The chart sets POD_NAMESPACE from the downward API; empty falls
		// back to the in-cluster service account's namespace.
		LeaderElectionNamespace: os.Getenv("POD_NAMESPACE"),
		WebhookServer:           crwebhook.NewServer(crwebhook.Options{Port: port, CertDir: certDir}),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if err := webhook.Setup(mgr, webhook.Options{Enforcement: mode}); err != nil {
		return err
	}
	log.Info("starting", "enforcement", mode, "webhookPort", port, "certDir", certDir)
	return mgr.Start(ctrl.SetupSignalHandler())
}
