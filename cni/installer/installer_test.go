package installer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

type node struct {
	cfg                             Config
	bin, kubeconfig, token, ca, src string
}

// newNode lays out a fake node (host bin and CNI config directories) and a
// fake pod (the plugin in the image, the projected token and CA).
func newNode(t *testing.T) *node {
	t.Helper()
	root := t.TempDir()
	n := &node{
		bin: filepath.Join(root, "host", "opt", "cni", "bin"), kubeconfig: filepath.Join(root, "host", "etc", "cni", "net.d", "poolguard", "poolguard-kubeconfig"),
		token: filepath.Join(root, "pod", "token"), ca: filepath.Join(root, "pod", "ca.crt"), src: filepath.Join(root, "pod", "poolguard-ipam"),
	}
	for _, d := range []string{n.bin, filepath.Dir(n.token)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, n.src, "#!plugin v1\n", 0o755)
	write(t, n.token, "token-1\n", 0o600)
	write(t, n.ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0o644)
	n.cfg = Config{Plugin: n.src, BinDir: n.bin, Kubeconfig: n.kubeconfig, TokenFile: n.token, CAFile: n.ca, Server: "https://[2001:db8::1]:6443", Interval: 20 * time.Millisecond}
	return n
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

// noTemporaries: nothing half-written is left next to the targets.
func noTemporaries(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temporary file left behind: %s", filepath.Join(d, e.Name()))
			}
		}
	}
}

// TestOnce installs the plugin executable and a 0600 kubeconfig (in a 0700
// directory) that a client can load, with the token and CA embedded.
func TestOnce(t *testing.T) {
	n := newNode(t)
	changed, err := n.cfg.Once()
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
	noTemporaries(t, n.bin, filepath.Dir(n.kubeconfig))

	// Nothing changed: nothing is rewritten.
	before := inode(t, n.kubeconfig)
	if changed, err := n.cfg.Once(); err != nil || changed {
		t.Fatalf("second Once = %v, %v; want no change", changed, err)
	}
	if inode(t, n.kubeconfig) != before {
		t.Fatal("kubeconfig rewritten although nothing changed")
	}
}

// TestRunFollowsRotationAtomically: a rotated token and a deleted plugin are
// restored by the loop, each by rename (a new inode), never in place.
func TestRunFollowsRotationAtomically(t *testing.T) {
	n := newNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var logs []string
	logf := func(f string, a ...any) { mu.Lock(); defer mu.Unlock(); logs = append(logs, fmt.Sprintf(f, a...)) }
	done := make(chan error, 1)
	go func() { done <- n.cfg.Run(ctx, logf) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, func() bool { _, err := os.Stat(n.kubeconfig); return err == nil })
	before := inode(t, n.kubeconfig)

	write(t, n.token, "token-2\n", 0o600) // the kubelet rotates the token
	waitFor(t, func() bool {
		cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
		return err == nil && cfg.BearerToken == "token-2"
	})
	if inode(t, n.kubeconfig) == before {
		t.Fatal("kubeconfig rewritten in place, not replaced by rename")
	}
	if fi, _ := os.Stat(n.kubeconfig); fi.Mode().Perm() != 0o600 {
		t.Fatalf("rewritten kubeconfig mode %v", fi.Mode())
	}

	// Somebody on the host opens the token to everyone: the next round
	// puts the mode back, not just the content.
	if err := os.Chmod(n.kubeconfig, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { fi, err := os.Stat(n.kubeconfig); return err == nil && fi.Mode().Perm() == 0o600 })

	if err := os.Remove(filepath.Join(n.bin, PluginName)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(n.bin, PluginName)); return err == nil })
	noTemporaries(t, n.bin, filepath.Dir(n.kubeconfig))
}

// TestRunFailsFirstRound: without a token the pod must not look installed.
func TestRunFailsFirstRound(t *testing.T) {
	n := newNode(t)
	if err := os.Remove(n.token); err != nil {
		t.Fatal(err)
	}
	if err := n.cfg.Run(context.Background(), t.Logf); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("Run without a token: %v", err)
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

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
