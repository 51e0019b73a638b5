package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// PluginName is the binary's name in the CNI bin directory: what the CNI
// configuration's "ipam": {"type": ...} names.
const PluginName = "poolguard-ipam"

// Config says what to install where.
type Config struct {
	// Plugin is the binary to install (in the image).
	Plugin string
	// BinDir is the host's CNI bin directory (mounted).
	BinDir string
	// Kubeconfig is the path the plugin's kubeconfig is written to.
	Kubeconfig string
	// TokenFile and CAFile are the service account token and cluster CA.
	TokenFile, CAFile string
	// Server is the API server URL; empty uses KUBERNETES_SERVICE_HOST and
	// KUBERNETES_SERVICE_PORT, as in-cluster clients do.
	Server string
	// Interval between checks for a rotated token; 30s when zero. The
	// kubelet refreshes a projected token well before it expires.
	Interval time.Duration
}

// server returns the API server URL.
func (c Config) server() (string, error) {
	if c.Server != "" {
		return c.Server, nil
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return "", errors.New("no --server and no KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT")
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// Kubeconfig renders the plugin's kubeconfig from the token and CA.
func (c Config) kubeconfig() ([]byte, error) {
	server, err := c.server()
	if err != nil {
		return nil, err
	}
	token, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading the service account token: %w", err)
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster CA: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["poolguard-ipam"] = &clientcmdapi.AuthInfo{Token: string(bytes.TrimSpace(token))}
	cfg.Contexts["poolguard-ipam"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "poolguard-ipam"}
	cfg.CurrentContext = "poolguard-ipam"
	return clientcmd.Write(*cfg)
}

// Once installs the plugin and writes the kubeconfig, each only when it
// differs from what is there; it reports whether anything was written.
func (c Config) Once() (changed bool, err error) {
	bin, err := os.ReadFile(c.Plugin)
	if err != nil {
		return false, fmt.Errorf("reading the plugin: %w", err)
	}
	wrote, err := writeIfChanged(filepath.Join(c.BinDir, PluginName), bin, 0o755)
	if err != nil {
		return false, fmt.Errorf("installing %s: %w", PluginName, err)
	}
	changed = wrote
	kc, err := c.kubeconfig()
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
	return changed || wrote, nil
}

// Run installs, then keeps everything current until ctx ends. A failed
// round is reported through logf and retried; the first round's error is
// returned, so the pod does not turn Running before the node can allocate.
func (c Config) Run(ctx context.Context, logf func(format string, args ...any)) error {
	if _, err := c.Once(); err != nil {
		return err
	}
	logf("installed %s into %s and wrote %s", PluginName, c.BinDir, c.Kubeconfig)
	interval := c.Interval
	if interval == 0 {
		interval = 30 * time.Second
	}
	// The first round ran above; wait.Until's first call would repeat it
	// at once, which is harmless (Once writes nothing that is current).
	wait.UntilWithContext(ctx, func(context.Context) {
		changed, err := c.Once()
		switch {
		case err != nil:
			logf("keeping the plugin installed: %v", err)
		case changed:
			logf("rewrote the plugin or its kubeconfig (token rotated or file changed on the host)")
		}
	}, interval)
	return nil
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
	// pending file is created with exactly mode, synced, then renamed.
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
