package installer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// NetworkConfig says which CNI network configuration list the installer
// writes into the host's CNI configuration directory, for clusters where
// poolguard's chart, not the network plugin, owns that file.
type NetworkConfig struct {
	// Source is the configuration list to install (in the pod: the chart's
	// ConfigMap, mounted). Empty: the installer writes no network
	// configuration.
	Source string
	// Dir is the host's CNI configuration directory (mounted) and Name the
	// file written there; it must end in .conflist, the one extension
	// container runtimes load as a list.
	Dir, Name string
	// HostKubeconfig is the plugin's kubeconfig as the container runtime on
	// the host sees it (not the path mounted into the installer), filled
	// into ipam.kubeconfig.
	HostKubeconfig string
	// NodeName is filled into ipam.nodeName, so the plugin never falls
	// back to the host name, which need not be the Node's name.
	NodeName string
}

// enabled reports whether a network configuration is to be written.
func (n NetworkConfig) enabled() bool { return n.Source != "" }

// Path is the file written on the host.
func (n NetworkConfig) Path() string { return filepath.Join(n.Dir, n.Name) }

// validate checks the settings, not the configuration itself.
func (n NetworkConfig) validate() error {
	if !n.enabled() {
		return nil
	}
	switch {
	case n.Dir == "":
		return fmt.Errorf("%w: no directory for the network configuration", ErrConfig)
	case n.Name == "" || n.Name != filepath.Base(n.Name) || !strings.HasSuffix(n.Name, ".conflist"):
		return fmt.Errorf("%w: network configuration name %q must be a file name ending in .conflist", ErrConfig, n.Name)
	case !filepath.IsAbs(n.HostKubeconfig):
		return fmt.Errorf("%w: the plugin's kubeconfig path on the host must be absolute, not %q", ErrConfig, n.HostKubeconfig)
	case n.NodeName == "":
		return fmt.Errorf("%w: the node name is required to fill in ipam.nodeName", ErrConfig)
	}
	return nil
}

// render reads Source and returns the file to write.
func (n NetworkConfig) render() ([]byte, error) {
	raw, err := os.ReadFile(n.Source)
	if err != nil {
		return nil, fmt.Errorf("reading the network configuration: %w", err)
	}
	out, err := FillNetworkConfig(raw, n.HostKubeconfig, n.NodeName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Source, err)
	}
	return out, nil
}

// FillNetworkConfig checks that raw is a CNI network configuration list
// with at least one plugin whose ipam.type is poolguard-ipam, and fills in
// each such plugin's ipam.kubeconfig and ipam.nodeName where absent (or
// empty): the values are per node, so a cluster-wide template cannot hold
// them. Explicit values are kept, and every other plugin and field is left
// as it is. The result is indented JSON with sorted keys, so the same input
// always gives the same bytes and an unchanged file is not rewritten.
func FillNetworkConfig(raw []byte, kubeconfig, nodeName string) ([]byte, error) {
	// libcni is what container runtimes load the file with: what it
	// refuses, no runtime would use.
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadNetworkConfig, err)
	}
	if len(list.Plugins) == 0 {
		return nil, fmt.Errorf("%w: network %q has no \"plugins\" list; the installer fills in poolguard-ipam's settings only in inline plugins", ErrBadNetworkConfig, list.Name)
	}
	// A generic decode keeps the fields poolguard does not know, and
	// numbers exactly as written.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadNetworkConfig, err)
	}
	plugins, _ := doc["plugins"].([]any) // libcni checked it is a list
	found := 0
	for _, p := range plugins {
		plugin, _ := p.(map[string]any)
		ipam, ok := plugin["ipam"].(map[string]any)
		if !ok || ipam["type"] != PluginName {
			continue
		}
		found++
		setIfAbsent(ipam, "kubeconfig", kubeconfig)
		setIfAbsent(ipam, "nodeName", nodeName)
	}
	if found == 0 {
		return nil, fmt.Errorf("%w (network %q)", ErrNoPoolguardIPAM, list.Name)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// setIfAbsent sets m[key] unless it holds a value already; null and ""
// count as absent (the plugin would refuse them as missing).
func setIfAbsent(m map[string]any, key, value string) {
	if v, ok := m[key]; !ok || v == nil || v == "" {
		m[key] = value
	}
}
