// Command poolguard-cni-install installs poolguard's CNI IPAM plugin and its
// kubeconfig on a node and keeps them current; the Helm chart runs it in the
// CNI installer DaemonSet. See package installer.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"poolguard.dev/poolguard/cni/installer"
)

func main() {
	var c installer.Config
	flag.StringVar(&c.Plugin, "plugin", "/poolguard-ipam", "The plugin binary to install.")
	flag.StringVar(&c.BinDir, "bin-dir", "/host/cni/bin", "The host's CNI bin directory, mounted.")
	flag.StringVar(&c.Kubeconfig, "kubeconfig", "/host/cni/net.d/poolguard/poolguard-kubeconfig", "Where to write the plugin's kubeconfig (mode 0600).")
	flag.StringVar(&c.TokenFile, "token", "/var/run/secrets/kubernetes.io/serviceaccount/token", "The service account token the plugin authenticates with.")
	flag.StringVar(&c.CAFile, "ca", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "The cluster CA.")
	flag.StringVar(&c.Server, "server", "", "API server URL; empty: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.")
	flag.DurationVar(&c.Interval, "interval", 30*time.Second, "How often to check for a rotated token or a changed file.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := log.New(os.Stderr, "poolguard-cni-install: ", log.LstdFlags|log.LUTC)
	logger.Printf("version %s", version)
	if err := c.Run(ctx, logger.Printf); err != nil {
		fmt.Fprintln(os.Stderr, "poolguard-cni-install:", err)
		os.Exit(1)
	}
}
