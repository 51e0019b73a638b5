package netlab

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// PodRef is the Pod object a sandbox belongs to, as the runtime tells the
// CNI plugins through CNI_ARGS.
type PodRef struct {
	Namespace, Name, UID string
}

// Sandbox is a pod's network namespace, set up through the CNI chain.
type Sandbox struct {
	// Netns is the namespace's name.
	Netns string
	// ContainerID is the CNI container ID cnitool derived from the
	// namespace's path: a new sandbox has a new one.
	ContainerID string
	// Addrs are the addresses the chain gave the pod's eth0.
	Addrs []netip.Prefix
	Pod   PodRef
}

// Addr returns the sandbox's address of a family (v6 or not).
func (s *Sandbox) Addr(v6 bool) (netip.Addr, bool) {
	for _, p := range s.Addrs {
		if p.Addr().Is6() == v6 {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// AddPod creates a sandbox named after sandbox (unique within the lab) for
// the pod and runs `cnitool add` in the node namespace. On failure the
// namespace is removed and the error carries the plugin's message.
func (l *Lab) AddPod(p PodRef, sandbox string) (*Sandbox, error) {
	name := l.cfg.Prefix + sandbox
	if _, err := ip("netns", "add", name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.pods[name] = nil
	l.mu.Unlock()
	s := &Sandbox{Netns: name, ContainerID: containerID(NetnsPath(name)), Pod: p}
	out, err := l.cnitool("add", s)
	if err != nil {
		_ = l.forget(name)
		return nil, err
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		_ = l.forget(name)
		return nil, fmt.Errorf("cnitool add printed no CNI result: %q", out)
	}
	for _, a := range res.IPs {
		pf, err := netip.ParsePrefix(a.Address)
		if err != nil {
			return nil, err
		}
		s.Addrs = append(s.Addrs, pf)
	}
	if err := l.addGatewayRoutes(s); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.pods[name] = s
	l.mu.Unlock()
	return s, nil
}

// addGatewayRoutes gives the pod a default route per family through the
// node's link-local gateway, the job a Calico-style dataplane does after
// IPAM: the pod reaches the firewall through the node.
func (l *Lab) addGatewayRoutes(s *Sandbox) error {
	if _, ok := s.Addr(false); ok {
		if _, err := ip("-n", s.Netns, "route", "add", "default", "via", gateway4.String(), "dev", "eth0", "onlink"); err != nil {
			return err
		}
	}
	if _, ok := s.Addr(true); ok {
		if _, err := ip("-n", s.Netns, "-6", "route", "add", "default", "via", gateway6.String(), "dev", "eth0"); err != nil {
			return err
		}
	}
	return nil
}

// DelPod tears the sandbox down: `cnitool del` (which releases its
// addresses), then its namespace.
func (l *Lab) DelPod(s *Sandbox) error {
	if _, err := l.cnitool("del", s); err != nil {
		return err
	}
	return l.forget(s.Netns)
}

func (l *Lab) forget(name string) error {
	l.mu.Lock()
	delete(l.pods, name)
	l.mu.Unlock()
	return delNetns(name)
}

// cnitool runs cnitool inside the node namespace, as a runtime on the node
// runs the chain, with the pod's identity in CNI_ARGS.
func (l *Lab) cnitool(verb string, s *Sandbox) (string, error) {
	args := []string{"netns", "exec", l.node, filepath.Join(l.cfg.BinDir, "cnitool"), verb, networkName, NetnsPath(s.Netns)}
	cmd := exec.Command("ip", args...)
	cniArgs := fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s", s.Pod.Namespace, s.Pod.Name, s.ContainerID, s.Pod.UID)
	cmd.Env = append(os.Environ(), "CNI_PATH="+l.cfg.PluginDir+string(filepath.ListSeparator)+l.cfg.BinDir, "NETCONFPATH="+l.netConfDir(), "CNI_ARGS="+cniArgs)
	out, err := cmd.CombinedOutput()
	if l.cfg.Log != nil {
		l.cfg.Log(fmt.Sprintf("ip netns exec %s cnitool %s %s %s   (CNI_ARGS=%s)", l.node, verb, networkName, NetnsPath(s.Netns), cniArgs), string(out))
	}
	if err != nil {
		return string(out), fmt.Errorf("cnitool %s for pod %s/%s: %w: %s", verb, s.Pod.Namespace, s.Pod.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// containerID is the container ID cnitool v1.3 derives from a namespace
// path.
func containerID(netnsPath string) string {
	s := sha512.Sum512([]byte(netnsPath))
	return fmt.Sprintf("cnitool-%x", s[:10])
}

// BuildPlugin builds poolguard-ipam from this checkout into dir.
func BuildPlugin(dir string) error {
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "poolguard-ipam"), "poolguard.dev/poolguard/cni/cmd/poolguard-ipam").CombinedOutput()
	if err != nil {
		return fmt.Errorf("building poolguard-ipam: %w: %s", err, out)
	}
	return nil
}
