package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"poolguard.dev/poolguard/test/netlab"
)

// The firewall's link to the node: its own /30 of the benchmarking range.
var (
	firewallLinkNode = netip.MustParsePrefix("198.18.0.9/30")
	firewallLinkFW   = netip.MustParsePrefix("198.18.0.10/30")
)

// FirewallPort is the legacy firewall's TCP service port.
const FirewallPort = 7070

// Firewall is a legacy firewall next to the node: its own network
// namespace, linked to the node's, with nftables rules that let only the
// trusted ranges reach its TCP service, which answers each connection with
// the source address it saw.
type Firewall struct {
	// Addr is the service's address, reachable from pods through the node.
	Addr  netip.AddrPort
	netns string
	stop  func()
	once  sync.Once
}

// StartFirewall starts the firewall; Close removes it with the cluster.
func (c *Cluster) StartFirewall(trusted ...netip.Prefix) (*Firewall, error) {
	f := c.Name + "-fw"
	c.closingMu.Lock()
	c.extraNetns = append(c.extraNetns, f)
	c.closingMu.Unlock()
	steps := [][]string{
		{"netns", "add", f},
		{"-n", f, "link", "set", "lo", "up"},
		{"-n", c.Netns, "link", "add", "to-fw", "type", "veth", "peer", "name", "to-node", "netns", f},
		{"-n", c.Netns, "addr", "add", firewallLinkNode.String(), "dev", "to-fw"},
		{"-n", f, "addr", "add", firewallLinkFW.String(), "dev", "to-node"},
		{"-n", c.Netns, "link", "set", "to-fw", "up"},
		{"-n", f, "link", "set", "to-node", "up"},
		{"-n", f, "route", "add", "default", "via", firewallLinkNode.Addr().String()},
	}
	for _, s := range steps {
		if _, err := netlab.Run("ip", s...); err != nil {
			return nil, err
		}
	}
	rules := netlab.FirewallRuleset("legacy_firewall", FirewallPort, trusted)
	path := filepath.Join(c.Dir, "firewall.nft")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		return nil, err
	}
	if _, err := netlab.Run("ip", "netns", "exec", f, "nft", "-f", path); err != nil {
		return nil, err
	}
	stop, err := netlab.StartListener(f, FirewallPort)
	if err != nil {
		return nil, err
	}
	fw := &Firewall{Addr: netip.AddrPortFrom(firewallLinkFW.Addr(), FirewallPort), netns: f, stop: stop}
	c.closingMu.Lock()
	c.closers = append(c.closers, fw.Close)
	c.closingMu.Unlock()
	return fw, nil
}

// Close stops the firewall's service (once; the cluster's Close does it
// too); its namespace goes with the cluster.
func (f *Firewall) Close() { f.once.Do(f.stop) }

// Load applies an nftables script in the firewall's namespace, as one
// transaction (nft -f).
func (f *Firewall) Load(script string) error {
	cmd := exec.Command("ip", "netns", "exec", f.netns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f in %s: %w: %s", f.netns, err, out)
	}
	return nil
}

// List returns nft list's output for what (e.g. "set", "inet", "t", "s").
func (f *Firewall) List(what ...string) (string, error) {
	return netlab.Run("ip", append([]string{"netns", "exec", f.netns, "nft", "list"}, what...)...)
}

// PodNetns returns the path of the network namespace holding addr: the
// sandbox of the pod with that address, pinned by containerd under its
// state directory.
func (c *Cluster) PodNetns(addr netip.Addr) (string, error) {
	var found []string
	_ = filepath.WalkDir(filepath.Join(c.Dir, "containerd", "state"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "cni-") {
			out, err := netlab.Run("nsenter", "--net="+p, "ip", "-o", "addr", "show")
			if err == nil && strings.Contains(out, " "+addr.String()+"/") {
				found = append(found, p)
			}
		}
		return nil
	})
	if len(found) != 1 {
		return "", fmt.Errorf("%d sandbox network namespaces hold %s: %v", len(found), addr, found)
	}
	return found[0], nil
}
