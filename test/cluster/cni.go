package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// bridgeName is the pods' bridge, inside the node's network namespace.
const bridgeName = "cni0"

// cniResultsDir is where libcni, inside containerd's CRI plugin, caches
// each attachment's result as <network>-<container>-<interface>: a path
// containerd 1.6 does not let one configure. The node's network is named
// after the cluster (Cluster.Name), so that its entries are told apart
// from other runs' and removed by Close.
const cniResultsDir = "/var/lib/cni/results"

// setupCNI fills the cluster's CNI directories: a private plugin directory
// with links to the reference plugins in bin/ (and any Config.Plugins),
// and the network configuration containerd loads: the bridge plugin with
// the configured IPAM, host-local over Config.PodRange by default.
// Call it before containerd starts: the CRI plugin reports the network
// ready (and the node becomes Ready) once it has loaded a configuration.
func (c *Cluster) setupCNI() error {
	c.cniBinDir = filepath.Join(c.Dir, "cni", "bin")
	c.cniConfDir = filepath.Join(c.Dir, "cni", "net.d")
	for _, d := range []string{c.cniBinDir, c.cniConfDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	plugins := map[string]string{}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		plugins[p] = filepath.Join(c.cfg.BinDir, p)
	}
	for name, path := range c.cfg.Plugins {
		plugins[name] = path
	}
	for name, path := range plugins {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("CNI plugin %s: %w (make cluster-tools builds the reference plugins)", name, err)
		}
		if err := os.Symlink(path, filepath.Join(c.cniBinDir, name)); err != nil {
			return err
		}
	}
	if c.cfg.Routed != nil {
		// The chart's installer writes the configuration and installs
		// the IPAM plugin.
		return nil
	}
	// host-local hands out the range's first address as the gateway the
	// bridge carries; another IPAM (poolguard-ipam) returns bare
	// addresses from pools, none of which the bridge may take.
	isGateway := c.cfg.IPAM == nil
	var ipam map[string]any
	if c.cfg.IPAM != nil {
		var err error
		if ipam, err = c.cfg.IPAM(c); err != nil {
			return err
		}
	} else {
		ipam = map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": c.cfg.PodRange.String()}}},
			"dataDir": filepath.Join(c.Dir, "cni", "host-local"),
		}
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       c.Name,
		"plugins": []any{map[string]any{
			"type":      "bridge",
			"bridge":    bridgeName,
			"isGateway": isGateway,
			// No masquerade: nothing leaves the node's namespace, and
			// there is no iptables binary on this machine to write it.
			"ipMasq": false,
			"ipam":   ipam,
		}},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.cniConfDir, "10-"+c.Name+".conflist"), b, 0o644)
}

// HostLocalAllocated lists the addresses host-local holds for pods: one
// file per address in its data directory. Empty when another IPAM runs.
func (c *Cluster) HostLocalAllocated() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(c.Dir, "cni", "host-local", c.Name))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, e := range entries {
		// host-local also keeps a lock and the last reserved address.
		if e.Name() == "lock" || strings.HasPrefix(e.Name(), "last_reserved_ip") {
			continue
		}
		addrs = append(addrs, e.Name())
	}
	return addrs, nil
}

// removeCNIResults removes libcni's cached results of the cluster's
// attachments: those of its network, and those of the loopback network
// containerd attaches every sandbox to ("cni-loopback"), told apart by the
// cluster's sandbox IDs. The CNI DEL that removes them never runs for a
// pod still running at teardown.
func (c *Cluster) removeCNIResults() error {
	ids := readDirNames(filepath.Join(c.Dir, "containerd", "root", "io.containerd.grpc.v1.cri", "sandboxes"))
	var errs []error
	for _, e := range readDirNames(cniResultsDir) {
		ours := strings.HasPrefix(e, c.Name+"-")
		for _, id := range ids {
			ours = ours || strings.Contains(e, "-"+id+"-")
		}
		if !ours {
			continue
		}
		if err := os.Remove(filepath.Join(cniResultsDir, e)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
