package installer

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// InstallerRESTConfig is the installer's own credential: in a pod, the
// in-cluster configuration (the DaemonSet's projected service account
// token, which client-go rereads as the kubelet rotates it); with a
// kubeconfig path, that file (tests, or running it by hand). A non-empty
// server replaces the API server URL either way, as it does in the
// plugin's kubeconfig: on a host-network pod the in-cluster service address
// may not be reachable before the node has a pod network.
//
// This identity may only request tokens of the plugin's ServiceAccount and
// read Nodes; it is never written to the host.
func InstallerRESTConfig(kubeconfig, server string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the installer's own API credentials: %w", ErrConfig, err)
	}
	if server != "" {
		cfg.Host = server
	}
	cfg.UserAgent = "poolguard-cni-install"
	return cfg, nil
}
