// Command poolguard-cni-install installs poolguard's CNI IPAM plugin, its
// kubeconfig (a token bound to this node) and optionally the node's CNI
// network configuration, and keeps them current; the Helm chart runs it in
// the CNI installer DaemonSet. See package installer.
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

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"poolguard.dev/poolguard/cni/installer"
)

func main() {
	var c installer.Config
	var tokens installer.NodeBoundTokens
	var installerKubeconfig string
	flag.StringVar(&c.Plugin, "plugin", "/poolguard-ipam", "The plugin binary to install.")
	flag.StringVar(&c.BinDir, "bin-dir", "/host/cni/bin", "The host's CNI bin directory, mounted.")
	flag.StringVar(&c.Kubeconfig, "kubeconfig", "/host/cni/net.d/poolguard/poolguard-kubeconfig", "Where to write the plugin's kubeconfig (mode 0600).")
	flag.StringVar(&c.CAFile, "ca", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "The cluster CA, written into the plugin's kubeconfig.")
	flag.StringVar(&c.Server, "server", "", "API server URL, for the plugin's kubeconfig and the installer's own client; empty: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.")
	flag.DurationVar(&c.Interval, "interval", 30*time.Second, "How often to put back a file changed or removed on the host.")
	flag.StringVar(&installerKubeconfig, "installer-kubeconfig", "", "The installer's own credentials; empty: in-cluster (the pod's service account).")
	flag.StringVar(&tokens.NodeName, "node-name", os.Getenv("NODE_NAME"), "This node's Node name; the plugin's token is bound to it. Default: $NODE_NAME.")
	flag.StringVar(&tokens.Namespace, "namespace", "", "Namespace of the plugin's ServiceAccount.")
	flag.StringVar(&tokens.ServiceAccount, "service-account", "", "The plugin's ServiceAccount, whose tokens the installer requests.")
	flag.DurationVar(&tokens.Expiration, "token-expiration", 24*time.Hour, "Lifetime of the plugin's tokens (at least 10m); a new one is requested after two thirds of it.")
	flag.StringVar(&c.Network.Source, "network-config", "", "A CNI network configuration list to install on the node; empty: none (the network plugin owns the node's configuration).")
	flag.StringVar(&c.Network.Dir, "network-config-dir", "/host/cni/net.d", "The host's CNI configuration directory, mounted.")
	flag.StringVar(&c.Network.Name, "network-config-name", "10-poolguard.conflist", "File name of the network configuration in --network-config-dir.")
	flag.StringVar(&c.Network.HostKubeconfig, "host-kubeconfig", "/etc/cni/net.d/poolguard/poolguard-kubeconfig", "The plugin's kubeconfig as the host sees it, filled into ipam.kubeconfig.")
	flag.Parse()

	logger := log.New(os.Stderr, "poolguard-cni-install: ", log.LstdFlags|log.LUTC)
	logger.Printf("version %s", version)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "poolguard-cni-install:", err)
		os.Exit(1)
	}
	cfg, err := installer.InstallerRESTConfig(installerKubeconfig, c.Server)
	if err != nil {
		fail(err)
	}
	if tokens.Client, err = corev1client.NewForConfig(cfg); err != nil {
		fail(err)
	}
	c.Tokens = tokens
	c.Network.NodeName = tokens.NodeName

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := c.Run(ctx, logger.Printf); err != nil {
		fail(err)
	}
}
