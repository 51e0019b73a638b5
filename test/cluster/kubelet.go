package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletConfig is the kubelet's configuration file. The facts of this
// machine decide several fields; see each comment.
var kubeletConfig = template.Must(template.New("kubelet").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# containerd 1.6 lacks the CRI RuntimeConfig call, so kubelet 1.37 uses
# this driver; there is no systemd here anyway.
cgroupDriver: cgroupfs
# A private cgroup root, so the kubepods cgroups are the cluster's own and
# removed with it.
cgroupRoot: {{.CgroupRoot}}
# This machine is cgroup v1 (hybrid), which kubelet 1.37 refuses by
# default, and may have swap.
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{{.Socket}}
imageServiceEndpoint: unix://{{.Socket}}
staticPodPath: {{.StaticPodDir}}
podLogsDir: {{.PodLogsDir}}
# The API server calls the kubelet (logs, exec) at the node's address.
address: {{.NodeIP}}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {{.CAFile}}
authorization:
  mode: Webhook
clusterDomain: cluster.local
# The machine's disk and memory belong to others too: evict only when
# nearly exhausted, and never garbage-collect images (the pause image is
# imported, not pullable).
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`))

// kubeletParams fill kubeletConfig.
type kubeletParams struct {
	CgroupRoot, Socket, StaticPodDir, PodLogsDir, CAFile, NodeIP string
}

// startKubelet writes the kubelet's configuration and starts it inside the
// node's network namespace, with its root directory in the cluster's.
func (c *Cluster) startKubelet() error {
	dir := filepath.Join(c.Dir, "kubelet")
	c.StaticPodDir = filepath.Join(dir, "manifests")
	params := kubeletParams{
		CgroupRoot:   c.cgroupRoot,
		Socket:       c.ContainerdSocket,
		StaticPodDir: c.StaticPodDir,
		PodLogsDir:   filepath.Join(dir, "pod-logs"),
		CAFile:       c.pki.CAFile,
		NodeIP:       c.cfg.NodeIP.String(),
	}
	for _, d := range []string{dir, params.StaticPodDir, params.PodLogsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := writeConfig(cfg, kubeletConfig, params); err != nil {
		return err
	}
	var err error
	c.kubelet, err = c.start("kubelet", filepath.Join(c.cfg.BinDir, "kubelet"),
		"--config="+cfg,
		"--kubeconfig="+c.pki.Kubelet,
		"--root-dir="+filepath.Join(dir, "root"),
		"--cert-dir="+filepath.Join(dir, "pki"),
		"--hostname-override="+c.NodeName,
		"--node-ip="+c.cfg.NodeIP.String(),
		"--v=2",
	)
	return err
}

// waitNodeRegistered waits until the kubelet has registered the node.
func (c *Cluster) waitNodeRegistered(timeout time.Duration) error {
	return c.waitNode("registered", timeout, func(*corev1.Node) (bool, error) { return true, nil })
}

// WaitNodeReady waits until the kubelet has registered the node and it
// reports Ready: the runtime and its CNI network are up.
func (c *Cluster) WaitNodeReady(timeout time.Duration) error {
	return c.waitNode("Ready", timeout, func(n *corev1.Node) (bool, error) {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return true, nil
				}
				return false, fmt.Errorf("node %s: %s: %s", c.NodeName, cond.Reason, cond.Message)
			}
		}
		return false, fmt.Errorf("node %s has no Ready condition yet", c.NodeName)
	})
}

// waitNode polls the node until cond holds, failing early when containerd
// or the kubelet exits.
func (c *Cluster) waitNode(what string, timeout time.Duration, cond func(*corev1.Node) (bool, error)) error {
	return poll("node "+c.NodeName+" "+what, timeout, func() (bool, error) {
		for _, p := range []*process{c.containerd, c.kubelet} {
			if done, err := p.exited(); done {
				return false, err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return cond(n)
	})
}
