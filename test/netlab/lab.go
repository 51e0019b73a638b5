package netlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// The lab's fixed addressing. The node-to-firewall link uses documentation
// ranges of its own; pods reach the node through a link-local gateway, as
// Calico's dataplane does, so that no address of a pool is taken by the
// node (see Config.PodRanges).
var (
	linkNode4    = netip.MustParsePrefix("203.0.113.1/30")
	linkFW4      = netip.MustParsePrefix("203.0.113.2/30")
	linkNode6    = netip.MustParsePrefix("2001:db8:ffff::1/64")
	linkFW6      = netip.MustParsePrefix("2001:db8:ffff::2/64")
	gateway4     = netip.MustParseAddr("169.254.1.1")
	gateway6     = netip.MustParseAddr("fe80::1")
	bridgeName   = "cni0"
	networkName  = "poolguard-lab"
	firewallPort = 7070
)

// LinkRanges are the ranges the lab itself uses between the node and the
// firewall; CheckRootFree them with the pools'.
func LinkRanges() []netip.Prefix {
	return []netip.Prefix{linkNode4.Masked(), linkNode6.Masked()}
}

// Config says what to build.
type Config struct {
	// Prefix starts the name of every network namespace (and the nftables
	// table) the lab creates, e.g. "pge2e-1a2b-". Leftovers looks for it.
	Prefix string
	// BinDir holds cnitool and the reference bridge plugin (make
	// e2e-tools builds them).
	BinDir string
	// PluginDir holds the poolguard-ipam to run; it comes first in
	// CNI_PATH. Empty: Start builds it from this checkout, so a stale
	// bin/poolguard-ipam is never what is tested.
	PluginDir string
	// APIServer is the API server's URL (rest.Config.Host) or host:port
	// in the root namespace, as it appears in Kubeconfig.
	APIServer string
	// Kubeconfig is the plugin's kubeconfig; the lab points it at its
	// forwarder inside the node namespace.
	Kubeconfig []byte
	// NodeName is the Node the plugin allocates for.
	NodeName string
	// PodRanges are every pool's range: the node routes them to its bridge.
	PodRanges []netip.Prefix
	// Trusted are the ranges the firewall accepts TCP from.
	Trusted []netip.Prefix
	// Log, when set, is told each command the lab runs that a person
	// would want to see, and its output.
	Log func(cmd, out string)
}

// Lab is a running lab. Close it, on every path.
type Lab struct {
	cfg      Config
	dir      string
	node     string
	firewall string
	fwd      *forwarder
	fw       *listener

	mu     sync.Mutex
	pods   map[string]*Sandbox
	closed bool
}

// Node is the node network namespace's name.
func (l *Lab) Node() string { return l.node }

// Firewall is the firewall network namespace's name.
func (l *Lab) Firewall() string { return l.firewall }

// FirewallAddrs are the firewall listener's addresses, v4 and v6.
func (l *Lab) FirewallAddrs() (netip.AddrPort, netip.AddrPort) {
	return netip.AddrPortFrom(linkFW4.Addr(), uint16(firewallPort)), netip.AddrPortFrom(linkFW6.Addr(), uint16(firewallPort))
}

// Start builds the node and firewall namespaces, the API forwarder, the
// firewall's rules and listener. On error it removes what it made.
func Start(cfg Config) (l *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("netlab needs root: it creates network namespaces, veths and nftables rules")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := Run("sh", "-c", "command -v "+tool); err != nil {
			return nil, fmt.Errorf("%s not found: install iproute2 and nftables (make deps)", tool)
		}
	}
	for _, b := range []string{"cnitool", "bridge"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run 'make e2e-tools'", b, cfg.BinDir)
		}
	}
	if err := CheckRootFree(append(append([]netip.Prefix{}, cfg.PodRanges...), LinkRanges()...)...); err != nil {
		return nil, err
	}
	l = &Lab{cfg: cfg, node: cfg.Prefix + "node", firewall: cfg.Prefix + "firewall", pods: map[string]*Sandbox{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
			l = nil
		}
	}()
	if l.dir, err = os.MkdirTemp("", cfg.Prefix+"lab-"); err != nil {
		return l, err
	}
	if l.cfg.PluginDir == "" {
		l.cfg.PluginDir = filepath.Join(l.dir, "plugins")
		if err := BuildPlugin(l.cfg.PluginDir); err != nil {
			return l, err
		}
	}
	if _, err := os.Stat(filepath.Join(l.cfg.PluginDir, "poolguard-ipam")); err != nil {
		return l, fmt.Errorf("poolguard-ipam not found in %s", l.cfg.PluginDir)
	}
	if err := l.buildNode(); err != nil {
		return l, err
	}
	if err := l.buildFirewall(); err != nil {
		return l, err
	}
	if u, perr := url.Parse(cfg.APIServer); perr == nil && u.Host != "" {
		l.cfg.APIServer = u.Host
	}
	if !strings.Contains(string(cfg.Kubeconfig), l.cfg.APIServer) {
		return l, fmt.Errorf("the plugin's kubeconfig does not name the API server %s", l.cfg.APIServer)
	}
	if l.fwd, err = startForwarder(l.node, l.cfg.APIServer); err != nil {
		return l, err
	}
	if err := l.writeNetConf(); err != nil {
		return l, err
	}
	return l, nil
}

// buildNode creates the node namespace: loopback (for the API forwarder),
// forwarding, and the pods' bridge with its link-local gateway and a route
// per pool.
func (l *Lab) buildNode() error {
	n := l.node
	steps := [][]string{
		{"netns", "add", n},
		{"-n", n, "link", "set", "lo", "up"},
		// The bridge exists before the first ADD so that it can carry the
		// gateway; the bridge plugin reuses it.
		{"-n", n, "link", "add", bridgeName, "type", "bridge"},
		{"-n", n, "addr", "add", gateway4.String() + "/32", "dev", bridgeName},
		{"-n", n, "addr", "add", gateway6.String() + "/64", "dev", bridgeName, "nodad"},
		{"-n", n, "link", "set", bridgeName, "up"},
	}
	for _, s := range steps {
		if _, err := ip(s...); err != nil {
			return err
		}
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := sysctl(n, k, "1"); err != nil {
			return err
		}
	}
	for _, r := range l.cfg.PodRanges {
		if _, err := ip("-n", n, "route", "add", r.String(), "dev", bridgeName); err != nil {
			return err
		}
	}
	return nil
}

// buildFirewall creates the firewall namespace, its veth link to the node,
// its nftables rules and its listener.
func (l *Lab) buildFirewall() error {
	n, f := l.node, l.firewall
	steps := [][]string{
		{"netns", "add", f},
		{"-n", f, "link", "set", "lo", "up"},
		{"-n", n, "link", "add", "to-firewall", "type", "veth", "peer", "name", "to-node", "netns", f},
		{"-n", n, "addr", "add", linkNode4.String(), "dev", "to-firewall"},
		{"-n", n, "addr", "add", linkNode6.String(), "dev", "to-firewall", "nodad"},
		{"-n", f, "addr", "add", linkFW4.String(), "dev", "to-node"},
		{"-n", f, "addr", "add", linkFW6.String(), "dev", "to-node", "nodad"},
		{"-n", n, "link", "set", "to-firewall", "up"},
		{"-n", f, "link", "set", "to-node", "up"},
		{"-n", f, "route", "add", "default", "via", linkNode4.Addr().String()},
		{"-n", f, "-6", "route", "add", "default", "via", linkNode6.Addr().String()},
	}
	for _, s := range steps {
		if _, err := ip(s...); err != nil {
			return err
		}
	}
	if err := l.applyRules(); err != nil {
		return err
	}
	var err error
	l.fw, err = startListener(f, firewallPort)
	return err
}

// FirewallTable is the name of the firewall's nftables table.
func (l *Lab) FirewallTable() string {
	return strings.ReplaceAll(l.cfg.Prefix, "-", "_") + "legacy_firewall"
}

// applyRules loads the legacy firewall's rules (FirewallRuleset).
func (l *Lab) applyRules() error {
	rules := FirewallRuleset(l.FirewallTable(), firewallPort, l.cfg.Trusted)
	path := filepath.Join(l.dir, "firewall.nft")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		return err
	}
	_, err := ip("netns", "exec", l.firewall, "nft", "-f", path)
	return err
}

// FirewallRuleset is a legacy firewall's nftables ruleset: TCP to port only
// from the trusted ranges, a reset for everyone else (so a refusal is
// immediate and unambiguous, not a timeout).
func FirewallRuleset(table string, port int, trusted []netip.Prefix) string {
	var v4, v6 []string
	for _, p := range trusted {
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked().String())
		} else {
			v6 = append(v6, p.Masked().String())
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n", table)
	if len(v4) > 0 {
		fmt.Fprintf(&b, "\t\ttcp dport %d ip saddr { %s } accept\n", port, strings.Join(v4, ", "))
	}
	if len(v6) > 0 {
		fmt.Fprintf(&b, "\t\ttcp dport %d ip6 saddr { %s } accept\n", port, strings.Join(v6, ", "))
	}
	fmt.Fprintf(&b, "\t\ttcp dport %d reject with tcp reset\n\t}\n}\n", port)
	return b.String()
}

// Exec runs a command inside a lab namespace and returns its combined
// output; with Config.Log set, the command and output are logged.
func (l *Lab) Exec(netns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", netns}, args...)...).CombinedOutput()
	if l.cfg.Log != nil {
		l.cfg.Log("ip netns exec "+netns+" "+shellJoin(args), string(out))
	}
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s: %w: %s", netns, shellJoin(args), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// shellJoin renders a command line a person can paste into a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '\"<>;&|$*[]{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// writeNetConf writes the node's network configuration: the reference
// bridge plugin with poolguard-ipam for addresses. isGateway stays off:
// poolguard-ipam returns an address with its pool's prefix and no gateway,
// and the bridge plugin would then take the pool's first host address for
// itself, which the allocator also hands to pods. The node's gateway is
// link-local instead (buildNode, addGatewayRoutes).
func (l *Lab) writeNetConf() error {
	kc := strings.ReplaceAll(string(l.cfg.Kubeconfig), l.cfg.APIServer, l.fwd.addr)
	kcPath := filepath.Join(l.dir, "poolguard-kubeconfig")
	if err := os.WriteFile(kcPath, []byte(kc), 0o600); err != nil {
		return err
	}
	conf := map[string]any{
		"cniVersion": "1.1.0",
		"name":       networkName,
		"plugins": []any{map[string]any{
			"type":      "bridge",
			"bridge":    bridgeName,
			"isGateway": false,
			"ipMasq":    false,
			"ipam": map[string]any{
				"type":       "poolguard-ipam",
				"kubeconfig": kcPath,
				"nodeName":   l.cfg.NodeName,
				"lockDir":    filepath.Join(l.dir, "locks"),
				// As the chart writes it: the lab's webhook runs the
				// allocator's controllers, the history recorder with them.
				"history": true,
			},
		}},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.netConfDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(l.netConfDir(), "10-"+networkName+".conflist"), b, 0o600)
}

func (l *Lab) netConfDir() string { return filepath.Join(l.dir, "net.d") }

// NetConfPath is the network configuration list the node uses.
func (l *Lab) NetConfPath() string {
	return filepath.Join(l.netConfDir(), "10-"+networkName+".conflist")
}

// Close removes the pods' namespaces, the firewall and the node, stops the
// listeners and removes the lab's files. It is safe to call twice and from
// a signal handler.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	pods := l.pods
	l.mu.Unlock()
	var errs []error
	if l.fw != nil {
		l.fw.close()
	}
	if l.fwd != nil {
		l.fwd.close()
	}
	for name := range pods {
		errs = append(errs, delNetns(name))
	}
	errs = append(errs, delNetns(l.firewall), delNetns(l.node))
	if l.dir != "" {
		errs = append(errs, os.RemoveAll(l.dir))
	}
	return errors.Join(errs...)
}

// delNetns removes a namespace if it exists; its interfaces go with it.
func delNetns(name string) error {
	if _, err := os.Stat(NetnsPath(name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_, err := ip("netns", "del", name)
	return err
}
