package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"poolguard.dev/poolguard/test/netlab"
)

// containerdConfig is containerd 1.6's configuration (version 2) for the
// node: every directory private, the CRI plugin pointed at the cluster's
// CNI directories and pause image.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 2
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
# Plugins the node does not use and that would otherwise probe or write
# outside the cluster's directory.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{{.Socket}}"

[ttrpc]
  address = "{{.Socket}}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.PauseImage}}"
  # Without CAP_SYS_RESOURCE runc cannot lower a container's
  # oom_score_adj below containerd's own, and fails to start the pause
  # container with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pod network namespaces are pinned under the state directory, not in
  # the machine's /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # The kubelet's cgroupDriver is cgroupfs: no systemd here.
        SystemdCgroup = false
        # runc's state, which defaults to /run/containerd/runc.
        Root = "{{.Dir}}/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.CNIBinDir}}"
    conf_dir = "{{.CNIConfDir}}"
    max_conf_num = 1
`))

// containerdParams fill containerdConfig.
type containerdParams struct {
	Dir, Socket, PauseImage, CNIBinDir, CNIConfDir string
}

// startContainerd writes containerd's configuration and starts it inside
// the node's network namespace, then waits for its socket to answer.
func (c *Cluster) startContainerd() error {
	dir := filepath.Join(c.Dir, "containerd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	c.ContainerdSocket = filepath.Join(dir, "containerd.sock")
	params := containerdParams{
		Dir: dir, Socket: c.ContainerdSocket, PauseImage: PauseImage,
		CNIBinDir: c.cniBinDir, CNIConfDir: c.cniConfDir,
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := writeConfig(cfg, containerdConfig, params); err != nil {
		return err
	}
	p, err := c.start("containerd", "containerd", "--config", cfg, "--log-level", "info")
	if err != nil {
		return err
	}
	c.containerd = p
	return poll("containerd answering on "+c.ContainerdSocket, 30*time.Second, func() (bool, error) {
		if done, err := p.exited(); done {
			return false, err
		}
		_, err := c.ctr("version")
		return err == nil, err
	})
}

// ctr runs containerd's ctr against the cluster's containerd, in the
// namespace the CRI plugin uses.
func (c *Cluster) ctr(args ...string) (string, error) {
	return netlab.Run("ctr", append([]string{"--address", c.ContainerdSocket, "--namespace", "k8s.io"}, args...)...)
}

// importImage imports an image tarball into the CRI plugin's namespace,
// unpacked for its snapshotter, so that pods run it without a pull.
func (c *Cluster) importImage(tarball string) error {
	if _, err := c.ctr("images", "import", tarball); err != nil {
		return fmt.Errorf("importing %s: %w", tarball, err)
	}
	return nil
}

// KillSandbox kills a pod's sandbox (the task of its pause container) with
// SIGKILL, as a crash would: the kubelet then tears the sandbox down and
// makes a new one, with a new CNI ADD.
func (c *Cluster) KillSandbox(namespace, name string) error {
	out, err := c.ctr("containers", "ls", "-q", fmt.Sprintf(
		`labels."io.kubernetes.pod.namespace"==%s,labels."io.kubernetes.pod.name"==%s,labels."io.cri-containerd.kind"==sandbox`, namespace, name))
	if err != nil {
		return err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return fmt.Errorf("no sandbox of pod %s/%s in containerd", namespace, name)
	}
	for _, id := range ids {
		if _, err := c.ctr("tasks", "kill", "--signal", "SIGKILL", id); err != nil && !strings.Contains(err.Error(), "not found") {
			return err
		}
	}
	return nil
}
