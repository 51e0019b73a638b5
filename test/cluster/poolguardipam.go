package cluster

import (
	"fmt"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/test/harness"
)

// PoolguardIPAM is a Config.IPAM that makes poolguard-ipam the node's IPAM
// plugin (put its binary in Config.Plugins["poolguard-ipam"]). The plugin
// runs inside the node's network namespace, where the API server listens
// on loopback.
//
// It authenticates as the cluster's admin for now: the chart's identity
// for the plugin, with a token the installer requests and binds to the
// Node, is what issue #10 asks for next.
func PoolguardIPAM(c *Cluster) (map[string]any, error) {
	return map[string]any{
		"type":       "poolguard-ipam",
		"kubeconfig": c.pki.Admin,
		"nodeName":   c.NodeName,
		"lockDir":    filepath.Join(c.Dir, "poolguard-ipam", "locks"),
	}, nil
}

// InstallPoolguardCRDs installs the chart's CRDs (IPPool and the
// allocator's objects) and waits until the API server serves them.
func (c *Cluster) InstallPoolguardCRDs() error {
	if _, err := envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{
		Paths: []string{harness.CRDDir()}, ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("installing poolguard's CRDs: %w", err)
	}
	return nil
}
