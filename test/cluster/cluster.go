package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// Default ranges, inside the benchmarking range 198.18.0.0/15 (never the
// machine's own 192.0.2.0/24): the node's address, its pods' range, and
// the Services' range.
var (
	DefaultNodeIP       = netip.MustParseAddr("198.18.0.1")
	DefaultPodRange     = netip.MustParsePrefix("198.18.16.0/24")
	DefaultServiceRange = netip.MustParsePrefix("198.18.32.0/24")
)

// NodeName is the cluster's only node.
const NodeName = "poolguard-node"

// Config says what to start; the zero value is a cluster with the default
// ranges, host-local as the node's IPAM and the tools in bin/.
type Config struct {
	// BinDir holds the pinned tools (make tools cluster-tools).
	BinDir string
	// NodeIP, PodRange and ServiceRange default to the Default* ones.
	NodeIP       netip.Addr
	PodRange     netip.Prefix
	ServiceRange netip.Prefix
	// ExtraRanges are other ranges the cluster will use (e.g. pools):
	// checked against the machine's addresses and routes with the rest.
	ExtraRanges []netip.Prefix
	// IPAM, when set, returns the bridge plugin's ipam section instead of
	// host-local over PodRange, e.g. PoolguardIPAM. It is called during
	// Start, before containerd runs, with the cluster's directories and
	// credentials in place.
	IPAM func(c *Cluster) (map[string]any, error)
	// Plugins are extra CNI plugins by name and path, e.g.
	// "poolguard-ipam": its binary.
	Plugins map[string]string
	// Routed, when set, makes the pod network a routed one whose CNI
	// configuration someone else writes (the chart's installer
	// DaemonSet): the cluster writes none, prepares the node's side
	// (see RoutedNetwork), and Start returns once the node has
	// registered, before it is Ready. IPAM is then ignored.
	Routed *RoutedNetwork
	// Logf, when set, is told the cluster's progress and timings.
	Logf func(format string, args ...any)
}

// Cluster is a running single-node cluster. Close it on every path.
type Cluster struct {
	// Name prefixes what the cluster creates on the machine: its
	// directory, network namespace and cgroup root.
	Name string
	// Dir holds everything the cluster writes: configuration, logs,
	// etcd's data, containerd's and the kubelet's state.
	Dir string
	// Netns is the node's network namespace's name (ip netns).
	Netns string
	// NodeName is the node's name.
	NodeName string
	// Config reaches the API server as an admin, through a socket in
	// the node's network namespace.
	Config *rest.Config
	// Client is an admin clientset.
	Client kubernetes.Interface
	// ContainerdSocket is containerd's private socket.
	ContainerdSocket string
	// StaticPodDir is the kubelet's staticPodPath.
	StaticPodDir string
	// Timings records how long each start step took.
	Timings []Timing

	cfg        Config
	before     *machineState
	pki        *pki
	cgroupRoot string
	cniBinDir  string
	cniConfDir string
	logDir     string

	etcd, apiserver, controllerManager, scheduler, kubeProxy, containerd, kubelet *process

	closeOnce sync.Once
	closeErr  error
	// closing is set when Close begins: a signal handler may close the
	// cluster while Start is still starting components, and nothing may
	// start after the teardown has passed it.
	closingMu sync.Mutex
	closing   bool
	// extraNetns are other network namespaces the cluster made (a
	// firewall), deleted by Close.
	extraNetns []string
	// closers stop what the cluster's helpers started (a firewall's
	// service) before the namespaces go.
	closers []func()
}

// Timing is how long one step of Start took.
type Timing struct {
	Step     string
	Duration time.Duration
}

// Start checks the machine, then starts the cluster and waits until its
// node is Ready. On error it removes what it made.
func Start(cfg Config) (c *Cluster, err error) {
	if cfg.BinDir == "" {
		cfg.BinDir = harness.BinDir()
	}
	if !cfg.NodeIP.IsValid() {
		cfg.NodeIP = DefaultNodeIP
	}
	if !cfg.PodRange.IsValid() {
		cfg.PodRange = DefaultPodRange
	}
	if !cfg.ServiceRange.IsValid() {
		cfg.ServiceRange = DefaultServiceRange
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := checkMachine(cfg); err != nil {
		return nil, err
	}
	before, err := snapshotMachine()
	if err != nil {
		return nil, fmt.Errorf("recording the machine's state: %w", err)
	}
	// A short directory name: containerd's socket path must fit the 108
	// bytes of a unix socket address.
	dir, err := os.MkdirTemp("", "poolguard-cluster-")
	if err != nil {
		return nil, err
	}
	name := filepath.Base(dir)
	c = &Cluster{
		Name: name, Dir: dir, Netns: name, NodeName: NodeName,
		cfg: cfg, before: before, cgroupRoot: "/" + name, logDir: filepath.Join(dir, "logs"),
	}
	register(c)
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
			c = nil
		}
	}()
	step := c.stepper()
	if err := c.writeOwner(); err != nil {
		return c, err
	}
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return c, err
	}
	if err := createNodeNetns(c.Netns, cfg.NodeIP); err != nil {
		return c, err
	}
	if cfg.Routed != nil {
		if err := cfg.Routed.prepare(c.Netns); err != nil {
			return c, err
		}
	}
	if err := createCgroupRoot(c.cgroupRoot); err != nil {
		return c, err
	}
	server := "https://" + net.JoinHostPort("127.0.0.1", apiServerPort)
	if c.pki, err = newPKI(filepath.Join(dir, "pki"), server, NodeName,
		"127.0.0.1", cfg.NodeIP.String(), serviceIP(cfg.ServiceRange).String(),
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"); err != nil {
		return c, err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.pki.Admin); err != nil {
		return c, err
	}
	c.Config.Dial = netnsDialer(filepath.Join(netnsDir, c.Netns))
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, err
	}
	step("prepare (network namespace, cgroups, certificates)")
	if err := c.startControlPlane(); err != nil {
		return c, err
	}
	if err := c.startKubeProxy(); err != nil {
		return c, err
	}
	step("control plane (etcd, kube-apiserver ready; controller manager, scheduler, kube-proxy started)")
	if err := c.setupCNI(); err != nil {
		return c, err
	}
	if err := c.startContainerd(); err != nil {
		return c, err
	}
	step("containerd")
	if err := c.importPauseImage(); err != nil {
		return c, err
	}
	step("pause image built and imported")
	if err := c.startKubelet(); err != nil {
		return c, err
	}
	if cfg.Routed != nil {
		// No network configuration yet: the node stays NotReady until
		// the installer writes one.
		if err := c.waitNodeRegistered(2 * time.Minute); err != nil {
			return c, err
		}
		step("kubelet, node registered")
		return c, nil
	}
	if err := c.WaitNodeReady(2 * time.Minute); err != nil {
		return c, err
	}
	step("kubelet, node Ready")
	return c, nil
}

// stepper returns a function that records the time since its last call
// under a step's name.
func (c *Cluster) stepper() func(string) {
	last := time.Now()
	return func(step string) {
		d := time.Since(last)
		last = time.Now()
		c.Timings = append(c.Timings, Timing{step, d})
		c.cfg.Logf("cluster: %s: %s", step, d.Round(time.Millisecond))
	}
}

// checkMachine fails early, saying what to run, when the machine lacks
// what the cluster needs or a range is taken.
func checkMachine(cfg Config) error {
	if os.Geteuid() != 0 {
		return errors.New("the cluster needs root: it runs containerd and a kubelet, and creates a network namespace and cgroups")
	}
	for _, tool := range []string{"ip", "nsenter", "containerd", "containerd-shim-runc-v2", "runc", "ctr", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run 'make cluster-deps' (containerd, runc from Debian; ip from iproute2; nsenter from util-linux)", tool)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return errors.New("nft not found: kube-proxy runs in nftables mode; run 'make deps' (nftables from Debian)")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet", "bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run 'make tools cluster-tools'", b, cfg.BinDir)
		}
	}
	ranges := append([]netip.Prefix{netip.PrefixFrom(cfg.NodeIP, cfg.NodeIP.BitLen()), cfg.PodRange, cfg.ServiceRange}, cfg.ExtraRanges...)
	if cfg.Routed != nil {
		ranges = append(ranges, cfg.Routed.Ranges...)
	}
	return netlab.CheckRootFree(ranges...)
}

// serviceIP is the kubernetes Service's address: the range's first.
func serviceIP(r netip.Prefix) netip.Addr { return r.Masked().Addr().Next() }

// start starts a component inside the node's network namespace.
func (c *Cluster) start(name, bin string, args ...string) (*process, error) {
	c.closingMu.Lock()
	defer c.closingMu.Unlock()
	if c.closing {
		return nil, errors.New("the cluster is closing: not starting " + name)
	}
	return startProcess(name, filepath.Join(netnsDir, c.Netns), c.logDir, bin, args...)
}

// Logs returns the last n lines of each component's log, for a failing
// test to print.
func (c *Cluster) Logs(n int) string {
	var b strings.Builder
	for _, p := range []*process{c.etcd, c.apiserver, c.controllerManager, c.scheduler, c.kubeProxy, c.containerd, c.kubelet} {
		if p != nil {
			fmt.Fprintf(&b, "==== %s (last %d lines of %s)\n%s\n", p.name, n, p.log, tail(p.log, n))
		}
	}
	return b.String()
}

// Close stops the cluster and removes everything it made, in the order
// that lets each part go: the kubelet first (or it restarts what is
// killed), then the pods' processes, the controllers, containerd and its
// shims, the API server and etcd; then mounts, cgroups, the network
// namespace, what the kubelet wrote outside its directories, and the
// directory. It carries on past errors and returns them all. Safe to call
// twice (a signal handler may race the test's cleanup).
func (c *Cluster) Close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Cluster) close() error {
	defer unregister(c)
	c.closingMu.Lock()
	c.closing = true
	c.closingMu.Unlock()
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, stop := range c.closers {
		stop()
	}
	add(c.kubelet.stop(15 * time.Second))
	add(killCgroupProcs(c.cgroupRoot, 20*time.Second))
	add(c.scheduler.stop(5 * time.Second))
	add(c.controllerManager.stop(5 * time.Second))
	add(c.kubeProxy.stop(5 * time.Second))
	add(c.containerd.stop(10 * time.Second))
	add(killShims(c.Dir))
	add(c.apiserver.stop(10 * time.Second))
	add(c.etcd.stop(10 * time.Second))
	add(unmountUnder(c.Dir))
	add(removeCgroupRoot(c.cgroupRoot))
	for _, n := range c.extraNetns {
		add(deleteNetns(n))
	}
	add(deleteNetns(c.Netns))
	if c.before != nil {
		add(restoreTunables(c.before.tunables))
		add(removeContainerLogLinks(c.Dir, c.before.paths["/var/log/containers"]))
		add(c.removeCNIResults())
		add(removeCreatedOutside(c.before.paths))
	}
	if len(errs) == 0 {
		add(os.RemoveAll(c.Dir))
	} else {
		// Keep the logs of a failed teardown for a person to read.
		add(fmt.Errorf("kept %s for its logs", c.Dir))
	}
	return errors.Join(errs...)
}

// killShims kills containerd's shims serving the cluster's containerd:
// containerd daemonizes them, so they outlive it.
func killShims(dir string) error { return killMatching("containerd shims", dir, "containerd-shim") }

// killMatching kills every process (but this one) whose command line
// contains each of subs, and waits until none is left.
func killMatching(what string, subs ...string) error {
	return poll(what+" gone", 15*time.Second, func() (bool, error) {
		left := 0
		cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range cmdlines {
			b, err := os.ReadFile(p)
			if err != nil || !containsAll(string(b), subs) {
				continue
			}
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if err != nil || pid == os.Getpid() {
				continue
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			left++
		}
		return left == 0, fmt.Errorf("%d %s still running", left, what)
	})
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// unmountUnder detaches every mount inside dir, deepest first: container
// root filesystems, pod volumes, network namespace pins.
func unmountUnder(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mounts[i], err))
		}
	}
	return errors.Join(errs...)
}

// restoreTunables writes back the kernel tunables the kubelet changed.
func restoreTunables(before map[string]string) error {
	var errs []error
	for t, v := range before {
		p := filepath.Join("/proc/sys", t)
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.TrimSpace(string(b)) != v {
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restoring sysctl %s to %s: %w", t, v, err))
			}
		}
	}
	return errors.Join(errs...)
}
