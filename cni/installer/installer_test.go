package installer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeTokens hands out token-1, token-2, ... each valid for life from the
// clock's now, or the errors queued in fail first.
type fakeTokens struct {
	clk  *clocktesting.FakeClock
	life time.Duration

	mu    sync.Mutex
	calls int
	fail  []error
}

func (f *fakeTokens) RequestToken(context.Context) (Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return Token{}, err
	}
	now := f.clk.Now()
	return Token{Value: fmt.Sprintf("token-%d", f.calls), Issued: now, Expires: now.Add(f.life)}, nil
}

func (f *fakeTokens) failNext(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, errs...)
}

func (f *fakeTokens) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type node struct {
	cfg                            Config
	clk                            *clocktesting.FakeClock
	tokens                         *fakeTokens
	bin, netd, kubeconfig, ca, src string
	conflist, netSource            string
}

// A network configuration in the shape the chart's ConfigMap holds: the
// bridge plugin with poolguard-ipam, chained with portmap.
const bridgeConflist = `{
  "cniVersion": "1.0.0",
  "name": "pods",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": false, "mtu": 1450,
     "ipam": {"type": "poolguard-ipam", "failSafe": "defaults"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`

// newNode lays out a fake node (host bin and CNI config directories) and a
// fake pod (the plugin in the image, the cluster CA, the mounted network
// configuration), on a fake clock.
func newNode(t *testing.T) *node {
	t.Helper()
	root := t.TempDir()
	n := &node{
		bin: filepath.Join(root, "host", "opt", "cni", "bin"), netd: filepath.Join(root, "host", "etc", "cni", "net.d"),
		ca: filepath.Join(root, "pod", "ca.crt"), src: filepath.Join(root, "pod", "poolguard-ipam"), netSource: filepath.Join(root, "pod", "config", "10-poolguard.conflist"),
	}
	n.kubeconfig = filepath.Join(n.netd, "poolguard", "poolguard-kubeconfig")
	n.conflist = filepath.Join(n.netd, "10-poolguard.conflist")
	for _, d := range []string{n.bin, n.netd, filepath.Dir(n.netSource)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, n.src, "#!plugin v1\n", 0o755)
	write(t, n.ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0o644)
	write(t, n.netSource, bridgeConflist, 0o644)
	n.clk = clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	n.tokens = &fakeTokens{clk: n.clk, life: 30 * time.Minute}
	n.cfg = Config{
		Plugin: n.src, BinDir: n.bin, Kubeconfig: n.kubeconfig, CAFile: n.ca, Server: "https://[2001:db8::1]:6443",
		Tokens: n.tokens, Interval: 30 * time.Second, Clock: n.clk,
		Network: NetworkConfig{Source: n.netSource, Dir: n.netd, Name: "10-poolguard.conflist", HostKubeconfig: "/etc/cni/net.d/poolguard/poolguard-kubeconfig", NodeName: "worker-1"},
	}
	return n
}

// run starts Run in the background; the returned func stops it (SIGTERM)
// and returns Run's error.
func (n *node) run(t *testing.T, logf func(string, ...any)) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.cfg.Run(ctx, logf) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// idle waits until Run sleeps on the fake clock: it has finished the round
// the last step started.
func (n *node) idle(t *testing.T) {
	t.Helper()
	waitFor(t, n.clk.HasWaiters)
}

// step moves the fake clock once Run sleeps, and waits for the round it
// triggers to finish.
func (n *node) step(t *testing.T, d time.Duration) {
	t.Helper()
	n.idle(t)
	n.clk.Step(d)
	n.idle(t)
}

func (n *node) token(t *testing.T) string {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		t.Fatalf("the plugin could not load its kubeconfig: %v", err)
	}
	return cfg.BearerToken
}

func write(t *testing.T, path, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// noTemporaries: nothing half-written is left next to the targets
// (renameio's pending files are hidden: ".<name><random>").
func noTemporaries(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file left behind: %s", filepath.Join(d, e.Name()))
			}
		}
	}
}

// TestOnce installs the plugin executable, a 0600 kubeconfig (in a 0700
// directory) that a client can load, with the token and CA embedded, and
// the filled-in network configuration (0644); a second round with nothing
// changed rewrites nothing.
func TestOnce(t *testing.T) {
	n := newNode(t)
	changed, err := n.cfg.Once("token-1")
	if err != nil || !changed {
		t.Fatalf("Once = %v, %v", changed, err)
	}
	fi, err := os.Stat(filepath.Join(n.bin, PluginName))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("plugin: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(n.bin, PluginName)); string(b) != "#!plugin v1\n" {
		t.Fatalf("plugin content %q", b)
	}
	fi, err = os.Stat(n.kubeconfig)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode %v (%v), want 0600: it holds a credential", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(n.kubeconfig)); di.Mode().Perm() != 0o700 {
		t.Fatalf("kubeconfig directory mode %v, want 0700", di.Mode())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		t.Fatalf("the plugin could not load its kubeconfig: %v", err)
	}
	if cfg.Host != n.cfg.Server || cfg.BearerToken != "token-1" || !strings.Contains(string(cfg.CAData), "MIIB") {
		t.Fatalf("kubeconfig = host %q token %q ca %q", cfg.Host, cfg.BearerToken, cfg.CAData)
	}
	fi, err = os.Stat(n.conflist)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("network configuration: %v %v, want mode 0644 (the runtime reads it)", fi, err)
	}
	ipam := ipamOf(t, mustRead(t, n.conflist), 0)
	if ipam["kubeconfig"] != "/etc/cni/net.d/poolguard/poolguard-kubeconfig" || ipam["nodeName"] != "worker-1" {
		t.Fatalf("installed ipam = %v, want the host kubeconfig path and the node name filled in", ipam)
	}
	noTemporaries(t, n.bin, n.netd, filepath.Dir(n.kubeconfig))

	// Nothing changed: nothing is rewritten.
	before, beforeConf := inode(t, n.kubeconfig), inode(t, n.conflist)
	if changed, err := n.cfg.Once("token-1"); err != nil || changed {
		t.Fatalf("second Once = %v, %v; want no change", changed, err)
	}
	if inode(t, n.kubeconfig) != before || inode(t, n.conflist) != beforeConf {
		t.Fatal("kubeconfig or network configuration rewritten although nothing changed")
	}
}

// TestOnceWithoutNetworkConfig: the default (the cluster's network plugin
// owns the configuration) writes no file into the configuration directory
// beyond poolguard's own subdirectory.
func TestOnceWithoutNetworkConfig(t *testing.T) {
	n := newNode(t)
	n.cfg.Network = NetworkConfig{}
	if _, err := n.cfg.Once("token-1"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(n.netd)
	if len(entries) != 1 || entries[0].Name() != "poolguard" {
		t.Fatalf("configuration directory holds %v, want only poolguard/", entries)
	}
}

// TestNetworkConfigWrittenLast: the network configuration is written only
// once the plugin's kubeconfig is in place. When the kubeconfig cannot be
// written (here its directory is a file; or there is no CA to put in it)
// the runtime must not be pointed at a plugin without a credential.
func TestNetworkConfigWrittenLast(t *testing.T) {
	t.Run("kubeconfig directory unwritable", func(t *testing.T) {
		n := newNode(t)
		write(t, filepath.Dir(n.kubeconfig), "not a directory", 0o644)
		if _, err := n.cfg.Once("token-1"); err == nil {
			t.Fatal("Once succeeded without a kubeconfig")
		}
		if exists(n.conflist) {
			t.Fatal("network configuration written although the kubeconfig is not in place")
		}
	})
	t.Run("no CA", func(t *testing.T) {
		n := newNode(t)
		if err := os.Remove(n.ca); err != nil {
			t.Fatal(err)
		}
		if _, err := n.cfg.Once("token-1"); err == nil || !strings.Contains(err.Error(), "CA") {
			t.Fatalf("Once without a CA: %v", err)
		}
		if exists(n.kubeconfig) || exists(n.conflist) {
			t.Fatal("kubeconfig or network configuration written without a CA")
		}
	})
	t.Run("no plugin", func(t *testing.T) {
		n := newNode(t)
		if err := os.Remove(n.src); err != nil {
			t.Fatal(err)
		}
		if _, err := n.cfg.Once("token-1"); err == nil {
			t.Fatal("Once succeeded without the plugin")
		}
		if exists(n.conflist) {
			t.Fatal("network configuration written although the plugin is not installed")
		}
	})
	t.Run("first round of Run, token refused", func(t *testing.T) {
		n := newNode(t)
		n.tokens.failNext(fmt.Errorf("%w: forbidden", ErrTokenRequest))
		err := n.cfg.Run(context.Background(), t.Logf)
		if !errors.Is(err, ErrTokenRequest) {
			t.Fatalf("Run with the token refused = %v, want ErrTokenRequest (the pod must not look installed)", err)
		}
		if exists(n.kubeconfig) || exists(n.conflist) {
			t.Fatal("files written without a token")
		}
	})
}

// TestRunRefreshesAtTwoThirds: the token is replaced when two thirds of
// its lifetime have passed, not before, and the kubeconfig is replaced by
// rename (a new inode), never in place, with its mode kept.
func TestRunRefreshesAtTwoThirds(t *testing.T) {
	n := newNode(t) // tokens live 30m: refresh at 20m
	var l Logs
	stop := n.run(t, l.Logf)
	n.idle(t)
	if got := n.token(t); got != "token-1" {
		t.Fatalf("first kubeconfig token = %q", got)
	}
	before := inode(t, n.kubeconfig)

	for range 39 { // 19m30s in rounds of 30s
		n.step(t, 30*time.Second)
	}
	if c := n.tokens.count(); c != 1 || n.token(t) != "token-1" {
		t.Fatalf("after 19m30s of a 30m token: %d requests, kubeconfig %q; want no refresh yet", c, n.token(t))
	}
	n.step(t, 30*time.Second) // 20m
	if c := n.tokens.count(); c != 2 || n.token(t) != "token-2" {
		t.Fatalf("at 20m of a 30m token: %d requests, kubeconfig %q; want the token refreshed", c, n.token(t))
	}
	if inode(t, n.kubeconfig) == before {
		t.Fatal("kubeconfig rewritten in place, not replaced by rename")
	}
	if fi, _ := os.Stat(n.kubeconfig); fi.Mode().Perm() != 0o600 {
		t.Fatalf("rewritten kubeconfig mode %v", fi.Mode())
	}
	// The next refresh is two thirds into the new token's life.
	n.step(t, 19*time.Minute)
	if c := n.tokens.count(); c != 2 {
		t.Fatalf("%d requests 19m into the second token", c)
	}
	n.step(t, time.Minute)
	if c := n.tokens.count(); c != 3 || n.token(t) != "token-3" {
		t.Fatalf("%d requests 20m into the second token, kubeconfig %q", c, n.token(t))
	}
	noTemporaries(t, n.netd, filepath.Dir(n.kubeconfig))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRunRetriesWithBackoff: a failed refresh is logged, retried after a
// growing delay, and the current token stays in the kubeconfig meanwhile.
func TestRunRetriesWithBackoff(t *testing.T) {
	n := newNode(t)
	var l Logs
	n.run(t, l.Logf)
	n.idle(t)
	refused := errors.New("the API server is away")
	n.tokens.failNext(refused, refused, refused)
	n.clk.Step(20 * time.Minute) // refresh due: attempt 1 fails
	n.idle(t)
	if got := l.Matching("token refresh failed"); len(got) != 1 || !strings.Contains(got[0], "attempt 1") || !strings.Contains(got[0], refused.Error()) {
		t.Fatalf("failure log = %q", got)
	}
	if n.token(t) != "token-1" {
		t.Fatal("the current token was removed while the refresh failed")
	}
	// Attempt 2 comes 1s later (up to 20% jitter), not a whole interval.
	n.step(t, 1200*time.Millisecond)
	if c := n.tokens.count(); c != 3 {
		t.Fatalf("%d requests 1.2s after the first failure, want the retry", c)
	}
	// Attempt 3 waits at least 2s: not after 1.5s.
	n.step(t, 1500*time.Millisecond)
	if c := n.tokens.count(); c != 3 {
		t.Fatalf("%d requests 1.5s after the second failure, want the backoff to have doubled", c)
	}
	n.step(t, time.Second) // 2.5s: attempt 3, fails
	n.step(t, 5*time.Second)
	if c := n.tokens.count(); c != 5 || n.token(t) != "token-5" {
		t.Fatalf("%d requests, kubeconfig %q: want the fourth attempt to succeed", c, n.token(t))
	}
	if got := l.Matching("token refresh failed"); len(got) != 3 {
		t.Fatalf("want each of the 3 failures logged, got %q", got)
	}
}

// TestRunPutsFilesBack: a file removed or changed on the host is put back
// within an interval, the kubeconfig's mode included.
func TestRunPutsFilesBack(t *testing.T) {
	n := newNode(t)
	n.run(t, t.Logf)
	n.idle(t)
	if err := os.Chmod(n.kubeconfig, 0o644); err != nil { // someone opens the token to everyone
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(n.bin, PluginName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(n.conflist); err != nil {
		t.Fatal(err)
	}
	n.step(t, 30*time.Second)
	if fi, err := os.Stat(n.kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode not restored: %v %v", fi, err)
	}
	if !exists(filepath.Join(n.bin, PluginName)) || !exists(n.conflist) {
		t.Fatal("plugin or network configuration not put back")
	}
	// The chart's ConfigMap changes (a new MTU): the node follows.
	write(t, n.netSource, strings.Replace(bridgeConflist, "1450", "9000", 1), 0o644)
	n.step(t, 30*time.Second)
	if !strings.Contains(string(mustRead(t, n.conflist)), "9000") {
		t.Fatal("network configuration not updated from its source")
	}
	// ...and a broken one leaves the last good file in place.
	write(t, n.netSource, "{", 0o644)
	n.step(t, 30*time.Second)
	if !strings.Contains(string(mustRead(t, n.conflist)), "9000") {
		t.Fatal("a broken source replaced or removed the installed network configuration")
	}
}

// TestRunLeavesEverythingOnStop: SIGTERM (an installer restart, an
// upgrade) removes nothing: the node keeps allocating meanwhile.
func TestRunLeavesEverythingOnStop(t *testing.T) {
	n := newNode(t)
	stop := n.run(t, t.Logf)
	n.idle(t)
	want := map[string][]byte{}
	for _, p := range []string{filepath.Join(n.bin, PluginName), n.kubeconfig, n.conflist} {
		want[p] = mustRead(t, p)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run on SIGTERM = %v, want nil", err)
	}
	for p, b := range want {
		if got, err := os.ReadFile(p); err != nil || string(got) != string(b) {
			t.Errorf("%s changed or removed on stop (%v)", p, err)
		}
	}
}

// TestRunRefusesBadSettings: settings runtimes or the API server would not
// accept are refused before anything is written.
func TestRunRefusesBadSettings(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"conf name": func(c *Config) { c.Network.Name = "10-poolguard.conf" },
		"path name": func(c *Config) { c.Network.Name = "../10-poolguard.conflist" },
		"relative":  func(c *Config) { c.Network.HostKubeconfig = "poolguard/poolguard-kubeconfig" },
		"no node":   func(c *Config) { c.Network.NodeName = "" },
		"no tokens": func(c *Config) { c.Tokens = nil },
		"short token": func(c *Config) {
			c.Tokens = NodeBoundTokens{Client: fakeClient(), Namespace: "ns", ServiceAccount: "sa", NodeName: "n", Expiration: 9 * time.Minute}
		},
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t)
			mutate(&n.cfg)
			if err := n.cfg.Run(context.Background(), t.Logf); !errors.Is(err, ErrConfig) {
				t.Fatalf("Run = %v, want ErrConfig", err)
			}
			if exists(filepath.Join(n.bin, PluginName)) {
				t.Fatal("plugin installed despite invalid settings")
			}
		})
	}
}

// TestServerFromEnvironment: in a pod, the in-cluster service address.
func TestServerFromEnvironment(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "2001:db8::10")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if s, err := (Config{}).server(); err != nil || s != "https://[2001:db8::10]:443" {
		t.Fatalf("server = %q, %v", s, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ipamOf returns the ipam object of the i-th plugin of a conflist.
func ipamOf(t *testing.T, conflist []byte, i int) map[string]any {
	t.Helper()
	var doc struct {
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(conflist, &doc); err != nil {
		t.Fatalf("conflist does not parse: %v\n%s", err, conflist)
	}
	ipam, _ := doc.Plugins[i]["ipam"].(map[string]any)
	return ipam
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
