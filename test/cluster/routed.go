package cluster

import (
	"net/netip"
	"net/url"
	"path/filepath"

	"k8s.io/client-go/rest"

	"poolguard.dev/poolguard/test/netlab"
)

// RoutedGateway is the link-local address pods reach the node through in a
// routed pod network, as in Calico's dataplane and the lab's: no address
// of a pool is the node's, so the allocator may hand every one to a pod.
var RoutedGateway = netip.MustParseAddr("169.254.1.1")

// RoutedNetwork is the node's side of a routed pod network over the bridge
// plugin: the bridge cni0 exists before any pod with RoutedGateway on it,
// each of Ranges (the pools) is routed to it, and the namespace forwards.
// The pod's side is the IPAM plugin's routes (RoutedIPAMRoutes): a
// link-scoped route to the gateway, then the default route through it.
// In a real cluster this is the main network plugin's job; here the
// cluster does it, the chart's installer writes the CNI configuration.
type RoutedNetwork struct {
	Ranges []netip.Prefix
}

// prepare sets the node's side up inside the node's namespace.
func (r *RoutedNetwork) prepare(netns string) error {
	steps := [][]string{
		{"-n", netns, "link", "add", bridgeName, "type", "bridge"},
		{"-n", netns, "addr", "add", netip.PrefixFrom(RoutedGateway, 32).String(), "dev", bridgeName},
		{"-n", netns, "link", "set", bridgeName, "up"},
	}
	for _, p := range r.Ranges {
		steps = append(steps, []string{"-n", netns, "route", "add", p.Masked().String(), "dev", bridgeName})
	}
	for _, s := range steps {
		if _, err := netlab.Run("ip", s...); err != nil {
			return err
		}
	}
	_, err := netlab.Run("ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	return err
}

// RoutedIPAMRoutes are the routes an IPAM plugin returns for a pod on a
// RoutedNetwork (poolguard-ipam's "routes"): scope 253 is link.
func RoutedIPAMRoutes() []map[string]any {
	return []map[string]any{
		{"dst": netip.PrefixFrom(RoutedGateway, 32).String(), "scope": 253},
		{"dst": "0.0.0.0/0", "gw": RoutedGateway.String()},
	}
}

// CNIBinDir and CNIConfDir are the node's CNI directories: what the
// chart's cni.binDir and cni.confDir point at on this node.
func (c *Cluster) CNIBinDir() string  { return c.cniBinDir }
func (c *Cluster) CNIConfDir() string { return c.cniConfDir }

// AdminKubeconfig is the path of the admin's kubeconfig, valid inside the
// node's network namespace (see InNode).
func (c *Cluster) AdminKubeconfig() string { return c.pki.Admin }

// NodeNetnsPath is the path of the node's network namespace.
func (c *Cluster) NodeNetnsPath() string { return filepath.Join(netnsDir, c.Netns) }

// InNode runs a command inside the node's network namespace (where the API
// server listens on loopback), e.g. helm or kubectl with KUBECONFIG set to
// AdminKubeconfig, and returns its output.
func (c *Cluster) InNode(name string, args ...string) (string, error) {
	return netlab.Run("nsenter", c.NodeArgv(name, args...)...)
}

// NodeArgv is nsenter's arguments that run name with args inside the
// node's network namespace, for callers that want the command's streams
// apart.
func (c *Cluster) NodeArgv(name string, args ...string) []string {
	return append([]string{"--net=" + filepath.Join(netnsDir, c.Netns), name}, args...)
}

// RootConfig is an admin REST config that reaches the API server from the
// machine's root network namespace, through a forwarder on the root's
// loopback into the node's (the API server's certificate is valid for
// 127.0.0.1): for clients that load their configuration from a kubeconfig
// file, which cannot carry Config's dialer, such as cert-manager's
// controllers. stop ends the forwarder.
func (c *Cluster) RootConfig() (cfg *rest.Config, stop func(), err error) {
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return nil, nil, err
	}
	addr, stop, err := netlab.Forward("", "127.0.0.1:0", filepath.Join(netnsDir, c.Netns), u.Host)
	if err != nil {
		return nil, nil, err
	}
	cfg = rest.CopyConfig(c.Config)
	cfg.Dial = nil
	cfg.Host = "https://" + addr
	return cfg, stop, nil
}
