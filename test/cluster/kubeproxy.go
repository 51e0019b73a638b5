package cluster

import (
	"os"
	"path/filepath"
	"text/template"
)

// kubeProxyConfig is kube-proxy's configuration: nftables mode (this
// machine has nft and no iptables binary), and every conntrack setting
// zero, which tells kube-proxy to leave the kernel's as they are: those
// tunables are the whole machine's, not the node namespace's.
var kubeProxyConfig = template.Must(template.New("kube-proxy").Parse(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: {{.Kubeconfig}}
hostnameOverride: {{.NodeName}}
bindAddress: {{.NodeIP}}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["{{.NodeIP}}/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`))

// kubeProxyParams fill kubeProxyConfig.
type kubeProxyParams struct {
	Kubeconfig, NodeName, NodeIP string
}

// startKubeProxy starts kube-proxy inside the node's network namespace:
// Service addresses (the kubernetes Service, which in-cluster clients such
// as the chart's pods dial) are translated by its nftables rules there.
func (c *Cluster) startKubeProxy() error {
	dir := filepath.Join(c.Dir, "kube-proxy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := writeConfig(cfg, kubeProxyConfig, kubeProxyParams{
		Kubeconfig: c.pki.KubeProxy, NodeName: c.NodeName, NodeIP: c.cfg.NodeIP.String(),
	}); err != nil {
		return err
	}
	var err error
	c.kubeProxy, err = c.start("kube-proxy", filepath.Join(c.cfg.BinDir, "kube-proxy"), "--config="+cfg, "--v=2")
	return err
}
