package installer

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/clock"
)

// PluginName is the binary's name in the CNI bin directory: what the CNI
// configuration's "ipam": {"type": ...} names.
const PluginName = "poolguard-ipam"

// minWait separates two rounds of Run at the least, so that a token due
// at once (a clock far off from the API server's) cannot make it spin.
const minWait = time.Second

// Config says what to install where.
type Config struct {
	// Plugin is the binary to install (in the image).
	Plugin string
	// BinDir is the host's CNI bin directory (mounted).
	BinDir string
	// Kubeconfig is the path the plugin's kubeconfig is written to.
	Kubeconfig string
	// CAFile is the cluster CA written into the kubeconfig.
	CAFile string
	// Server is the API server URL; empty uses KUBERNETES_SERVICE_HOST and
	// KUBERNETES_SERVICE_PORT, as in-cluster clients do.
	Server string
	// Tokens requests the plugin's token (NodeBoundTokens in the chart).
	Tokens TokenRequester
	// Network, when its Source is set, is the node's CNI network
	// configuration, written after the plugin and its kubeconfig.
	Network NetworkConfig
	// Interval between rounds that put back a file changed or removed on
	// the host; 30s when zero. Token refreshes are scheduled on their own.
	Interval time.Duration
	// Clock drives the rounds and the refreshes; the real clock when nil.
	Clock clock.Clock
}

// server returns the API server URL.
func (c Config) server() (string, error) {
	if c.Server != "" {
		return c.Server, nil
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return "", fmt.Errorf("%w: no --server and no KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT", ErrConfig)
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

func (c Config) clock() clock.Clock {
	if c.Clock == nil {
		return clock.RealClock{}
	}
	return c.Clock
}

// kubeconfig renders the plugin's kubeconfig from the token and the CA.
func (c Config) kubeconfig(token string) ([]byte, error) {
	server, err := c.server()
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("%w: no token for the plugin's kubeconfig", ErrTokenRequest)
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster CA: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["poolguard-ipam"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["poolguard-ipam"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "poolguard-ipam"}
	cfg.CurrentContext = "poolguard-ipam"
	return clientcmd.Write(*cfg)
}

// Once installs the plugin, writes its kubeconfig with token and, when
// configured, the node's network configuration, each only when it differs
// from what is there; it reports whether anything was written.
//
// The order is the contract with the container runtime: a runtime that
// sees the network configuration must find the plugin and its credential
// ready, so the configuration is written last, and not at all when an
// earlier step failed.
func (c Config) Once(token string) (changed bool, err error) {
	bin, err := os.ReadFile(c.Plugin)
	if err != nil {
		return false, fmt.Errorf("reading the plugin: %w", err)
	}
	wrote, err := writeIfChanged(filepath.Join(c.BinDir, PluginName), bin, 0o755)
	if err != nil {
		return false, fmt.Errorf("installing %s: %w", PluginName, err)
	}
	changed = wrote
	kc, err := c.kubeconfig(token)
	if err != nil {
		return changed, err
	}
	// The directory holds a credential: owner only.
	if err := os.MkdirAll(filepath.Dir(c.Kubeconfig), 0o700); err != nil {
		return changed, err
	}
	wrote, err = writeIfChanged(c.Kubeconfig, kc, 0o600)
	if err != nil {
		return changed, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	changed = changed || wrote
	if !c.Network.enabled() {
		return changed, nil
	}
	conf, err := c.Network.render()
	if err != nil {
		return changed, err
	}
	// Read by the runtime, which need not run as root; holds no secret.
	wrote, err = writeIfChanged(c.Network.Path(), conf, 0o644)
	if err != nil {
		return changed, fmt.Errorf("writing the network configuration: %w", err)
	}
	return changed || wrote, nil
}

// validate checks the settings before anything is written.
func (c Config) validate() error {
	if c.Tokens == nil {
		return fmt.Errorf("%w: nothing to request the plugin's token from", ErrConfig)
	}
	if v, ok := c.Tokens.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	return c.Network.validate()
}

// Run requests a fresh token for the plugin and installs everything, then
// keeps it current until ctx ends: a new token once two thirds of the
// current one's lifetime have passed (retried with RetryDelay on failure,
// each failure reported through logf, the current token staying in place
// meanwhile), and every Interval the files put back if changed on the host.
//
// The first round's error is returned, so the pod does not turn Running
// before the node can allocate. A token is requested on every start, even
// when the host holds a valid one: the installer cannot know how long an
// earlier installer's token has left, and a restarted installer must not
// leave one about to expire.
//
// When ctx ends (SIGTERM) everything stays in place: the node keeps
// allocating across an installer restart or upgrade, until the token
// expires.
func (c Config) Run(ctx context.Context, logf func(format string, args ...any)) error {
	if err := c.validate(); err != nil {
		return err
	}
	tok, err := c.Tokens.RequestToken(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Once(tok.Value); err != nil {
		return err
	}
	logf("installed %s into %s and wrote %s (token valid until %s, refreshed from %s)", PluginName, c.BinDir, c.Kubeconfig,
		tok.Expires.UTC().Format(time.RFC3339), tok.RefreshAt().UTC().Format(time.RFC3339))
	if c.Network.enabled() {
		logf("wrote the network configuration %s", c.Network.Path())
	}
	clk := c.clock()
	interval := c.Interval
	if interval == 0 {
		interval = 30 * time.Second
	}
	failures := 0
	var retryAt time.Time
	for {
		due := tok.RefreshAt()
		if failures > 0 {
			due = retryAt
		}
		now := clk.Now()
		wake := min(interval, due.Sub(now))
		if !c.sleep(ctx, clk, max(wake, minWait)) {
			return nil
		}
		if now := clk.Now(); !now.Before(due) {
			fresh, err := c.Tokens.RequestToken(ctx)
			switch {
			case ctx.Err() != nil:
				// Stopping: a request cut short is no failure to report,
				// and the next sleep returns at once.
				continue
			case err != nil:
				failures++
				// Jitter: the nodes that lost the API server together
				// should not come back to it in step.
				delay := wait.Jitter(RetryDelay(failures), 0.2)
				retryAt = now.Add(delay)
				logf("token refresh failed (attempt %d, next in %s; the plugin's current token is valid until %s): %v",
					failures, delay.Round(time.Second), tok.Expires.UTC().Format(time.RFC3339), err)
			default:
				tok, failures = fresh, 0
				logf("requested a new token for the plugin, valid until %s, refreshed from %s",
					tok.Expires.UTC().Format(time.RFC3339), tok.RefreshAt().UTC().Format(time.RFC3339))
			}
		}
		switch changed, err := c.Once(tok.Value); {
		case err != nil:
			logf("keeping the plugin installed: %v", err)
		case changed:
			logf("rewrote the plugin, its kubeconfig or the network configuration (new token or file changed on the host)")
		}
	}
}

// sleep waits d on clk; false when ctx ended first.
func (c Config) sleep(ctx context.Context, clk clock.Clock, d time.Duration) bool {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// writeIfChanged writes b to path atomically with mode, unless path
// already holds exactly b with that mode.
func writeIfChanged(path string, b []byte, mode os.FileMode) (bool, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == mode {
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
			return false, nil
		}
	}
	// renameio.WriteFile would keep a wrong mode found on the host; the
	// pending file is created with exactly mode, synced, then renamed. Its
	// name (".<name><random>") ends in no extension a runtime loads.
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(mode))
	if err != nil {
		return true, err
	}
	defer func() { _ = f.Cleanup() }() // a no-op once replaced
	if _, err := f.Write(b); err != nil {
		return true, err
	}
	return true, f.CloseAtomicallyReplace()
}
