package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"poolguard.dev/poolguard/test/netlab"
)

// outsidePaths are the places outside the cluster's directory where the
// kubelet, containerd or the CNI plugins write by default. The cluster
// configures each away; Leftovers checks that none appeared or changed.
var outsidePaths = []string{
	"/var/lib/kubelet", "/var/log/pods", "/var/log/containers",
	"/run/containerd", "/var/lib/containerd", "/opt/containerd",
	"/var/lib/cni", cniResultsDir, "/etc/cni/net.d", "/opt/cni/bin", "/var/run/kubernetes",
}

// kernelTunables are the global sysctls the kubelet sets at start (see
// setupKernelTunables in its container manager); Close puts them back.
var kernelTunables = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic",
	"kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// machineState is what the cluster could change on the machine, outside
// its own directory and network namespace.
type machineState struct {
	netns     []string
	links     []string
	nftTables []string
	iptables  []string
	cgroups   []string
	paths     map[string][]string
	tunables  map[string]string
}

// snapshotMachine records the machine's state.
func snapshotMachine() (*machineState, error) {
	s := &machineState{paths: map[string][]string{}, tunables: map[string]string{}}
	s.netns = readDirNames("/var/run/netns")
	out, err := netlab.Run("ip", "-o", "link", "show")
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.links = append(s.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	if out, err := netlab.Run("nft", "list", "tables"); err == nil {
		s.nftTables = nonEmptyLines(out)
	}
	// The legacy iptables chains a kubelet or kube-proxy in the root
	// namespace would write; this machine may have no iptables at all.
	if _, err := exec.LookPath("iptables-save"); err == nil {
		out, _ := netlab.Run("iptables-save")
		for _, l := range nonEmptyLines(out) {
			if strings.Contains(l, "KUBE-") {
				s.iptables = append(s.iptables, l)
			}
		}
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		for _, n := range readDirNames(h) {
			if strings.HasPrefix(n, "kubepods") || strings.HasPrefix(n, "poolguard-cluster") {
				s.cgroups = append(s.cgroups, filepath.Join(h, n))
			}
		}
	}
	for _, p := range outsidePaths {
		if _, err := os.Stat(p); err == nil {
			s.paths[p] = readDirNames(p)
		}
	}
	for _, t := range kernelTunables {
		b, err := os.ReadFile(filepath.Join("/proc/sys", t))
		if err != nil {
			return nil, err
		}
		s.tunables[t] = strings.TrimSpace(string(b))
	}
	return s, nil
}

// diff describes how now differs from s, the state before the cluster.
// Network namespaces, root interfaces and nftables tables are compared
// only by the names the cluster, containerd, the CNI plugins, the kubelet
// or kube-proxy would give them (mine): other tests on this machine create
// and remove their own meanwhile.
func (s *machineState) diff(now *machineState, mine func(string) bool) []string {
	var d []string
	d = append(d, listDiff("network namespace", filter(s.netns, mine), filter(now.netns, mine))...)
	d = append(d, listDiff("root namespace interface", filter(s.links, mine), filter(now.links, mine))...)
	d = append(d, listDiff("nftables", filter(s.nftTables, mine), filter(now.nftTables, mine))...)
	d = append(d, listDiff("iptables", s.iptables, now.iptables)...)
	d = append(d, listDiff("cgroup", s.cgroups, now.cgroups)...)
	for _, p := range outsidePaths {
		before, had := s.paths[p]
		after, has := now.paths[p]
		switch {
		case had != has:
			d = append(d, fmt.Sprintf("%s: existed before %t, now %t", p, had, has))
		case p == cniResultsDir:
			// Other tests' CNI runs come and go here too.
			d = append(d, listDiff(p+" entry", filter(before, mine), filter(after, mine))...)
		default:
			d = append(d, listDiff(p+" entry", before, after)...)
		}
	}
	for _, t := range kernelTunables {
		if s.tunables[t] != now.tunables[t] {
			d = append(d, fmt.Sprintf("sysctl %s: %s before, %s now", t, s.tunables[t], now.tunables[t]))
		}
	}
	return d
}

// listDiff names the elements added to or removed from before.
func listDiff(what string, before, after []string) []string {
	var d []string
	for _, a := range after {
		if !slices.Contains(before, a) {
			d = append(d, what+" "+a+" appeared")
		}
	}
	for _, b := range before {
		if !slices.Contains(after, b) {
			d = append(d, what+" "+b+" disappeared")
		}
	}
	return d
}

// leftoverProcesses lists running processes whose command line names dir:
// the cluster's components and containerd's shims, which containerd
// daemonizes away from the test's process tree.
func leftoverProcesses(dir string) []string {
	var out []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		if strings.Contains(cmd, dir) {
			out = append(out, fmt.Sprintf("process %s: %s", filepath.Base(filepath.Dir(p)), cmd))
		}
	}
	return out
}

// mountsUnder lists the machine's mount points inside dir, deepest last.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces escaped as \040.
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// Leftovers reports what the cluster left on the machine after Close:
// processes or mounts naming its directory, its cgroups, and any change
// to the network namespaces, root interfaces, nftables tables, KUBE-
// iptables rules, cgroups named kubepods, the kubelet's and containerd's
// default directories and the kernel tunables, compared with before
// Start. It returns nil when the machine is as the cluster found it.
func (c *Cluster) Leftovers() error {
	var left []string
	left = append(left, leftoverProcesses(c.Dir)...)
	mounts, err := mountsUnder(c.Dir)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		left = append(left, "mount "+m)
	}
	if _, err := os.Stat(c.Dir); err == nil {
		left = append(left, "directory "+c.Dir)
	}
	now, err := snapshotMachine()
	if err != nil {
		return err
	}
	left = append(left, c.before.diff(now, c.mine)...)
	if len(left) > 0 {
		return errors.New("left behind: " + strings.Join(left, "; "))
	}
	return nil
}

// mine reports whether a network namespace, interface or nftables table
// name is one the cluster or its components would create.
func (c *Cluster) mine(name string) bool {
	for _, p := range []string{c.Name, "cni-", bridgeName, "veth", nodeLink, "kube", "flannel", "cali"} {
		if strings.Contains(name, p) {
			return true
		}
	}
	return false
}

func filter(list []string, keep func(string) bool) []string {
	var out []string
	for _, s := range list {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

func readDirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
