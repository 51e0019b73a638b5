package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"poolguard.dev/poolguard/policy"
)

// Defaults of the plugin's configuration.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultFailSafe = policy.FailSafeDefaults
	// DefaultCooldown is how long a released address stays out of use
	// (ipam.cooldown): long enough for a firewall's connection state for
	// it to expire and its logs to show a gap between two pods.
	DefaultCooldown = 5 * time.Minute
	// GracePeriodPerTimeout is how many plugin timeouts the garbage
	// collector's grace period must hold at least (ipam.gcGracePeriod).
	// The collector frees a slot no claim records once it has seen it so
	// for the grace period, and an ADD writes its claim after its slots.
	// One timeout is not enough: an ADD that timed out leaves its slots
	// unclaimed, and the runtime's retry of the same attachment reuses
	// them (same claim, same sequence numbers, so the collector's clock on
	// them keeps running) and may take a whole timeout again before it
	// writes the claim. Two timeouts cover an ADD and its retry; the
	// chart (allocator.gc.gracePeriod, cni.timeout) and the collector's
	// minimum (--gc-grace-period) apply the same rule.
	GracePeriodPerTimeout = 2
	// PodAnnotationsCapability is the runtimeConfig key under which
	// containerd passes the pod's annotations (capability
	// "io.kubernetes.cri.pod-annotations"); when present the plugin uses
	// them instead of reading the pod.
	PodAnnotationsCapability = "io.kubernetes.cri.pod-annotations"
)

// ErrBadConfig wraps every configuration error (CNI code 7).
var ErrBadConfig = errors.New("invalid plugin configuration")

// IPAMConfig is the "ipam" section of the network configuration:
//
//	"ipam": {
//	  "type": "poolguard-ipam",
//	  "kubeconfig": "/etc/cni/net.d/poolguard/poolguard-kubeconfig",
//	  "nodeName": "worker-1",
//	  "failSafe": "defaults",
//	  "timeout": "30s",
//	  "gcGracePeriod": "5m",
//	  "cooldown": "5m",
//	  "lockDir": "/run/poolguard-ipam",
//	  "routes": [{"dst": "169.254.1.1/32", "scope": 253},
//	             {"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
//	}
type IPAMConfig struct {
	Type string `json:"type"`
	// Kubeconfig is the path of the kubeconfig the plugin uses. Required.
	Kubeconfig string `json:"kubeconfig"`
	// NodeName is this node's name as the API server knows it. Default:
	// $NODENAME, else $KUBERNETES_NODE_NAME, else the host name.
	NodeName string `json:"nodeName,omitempty"`
	// FailSafe is what a pod without poolguard's provenance annotation
	// gets: "defaults" (unrestricted Automatic pools only, the default) or
	// "refuse".
	FailSafe policy.FailSafe `json:"failSafe,omitempty"`
	// Timeout bounds one plugin call, as a Go duration. Default 30s.
	Timeout string `json:"timeout,omitempty"`
	// GCGracePeriod is the grace period of the garbage collector the
	// plugin runs under (the webhook's --gc-grace-period; the chart
	// renders it from allocator.gc.gracePeriod), as a Go duration. When
	// set, a Timeout above half of it is refused: the collector could
	// free the slots of an ADD still running. Absent: no check (the
	// plugin cannot know the collector's setting).
	GCGracePeriod string `json:"gcGracePeriod,omitempty"`
	// Cooldown is how long an address released (by a DEL, a CNI GC or
	// the garbage collector) stays out of use before the plugin hands it
	// out again, as a Go duration, so that a firewall's connection state
	// and logs for it cannot be mistaken for the next pod's. Default 5m
	// (DefaultCooldown); "0s" turns it off. The chart renders it from
	// allocator.cooldown. It applies to every block the node allocates
	// from, the shared and borrowed ones too: give all nodes the same.
	Cooldown string `json:"cooldown,omitempty"`
	// LockDir holds the node-local lock that queues this node's plugin
	// processes for their block. Default /run/poolguard-ipam.
	LockDir string `json:"lockDir,omitempty"`
	// History has every claim the plugin writes carry the attribution
	// history's finalizer, so that its release is recorded before the
	// claim goes, even one made while the recorder is down. Set it only
	// where the allocator's recorder runs (the chart renders it from
	// allocator.history.enabled): without it, released claims linger.
	History bool `json:"history,omitempty"`
	// Routes are returned with every result whose addresses include one
	// of the route's family, for the main plugin to install in the pod
	// (as host-local's "routes"). poolguard-ipam returns no gateway: a
	// dataplane that routes pods through a link-local gateway lists a
	// link-scoped route to it (scope 253) before the routes through it.
	Routes []*types.Route `json:"routes,omitempty"`
}

// NetConf is the network configuration the runtime passes on stdin.
type NetConf struct {
	types.PluginConf
	IPAM          IPAMConfig     `json:"ipam"`
	RuntimeConfig *RuntimeConfig `json:"runtimeConfig,omitempty"`
}

// RuntimeConfig is what the runtime adds for the capabilities the plugin
// asks for.
type RuntimeConfig struct {
	PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
}

// Config is the validated configuration.
type Config struct {
	Net        NetConf
	Kubeconfig string
	Node       string
	// NodeFrom says where Node came from (ipam.nodeName, an environment
	// variable or the host name), for the error that the API server does
	// not know it.
	NodeFrom       string
	FailSafe       policy.FailSafe
	Timeout        time.Duration
	PodAnnotations map[string]string
	LockDir        string
	Routes         []*types.Route
	// Cooldown: see IPAMConfig.Cooldown.
	Cooldown time.Duration
	// History: see IPAMConfig.History.
	History bool
}

// getenv is os.Getenv, replaceable by fuzzing and tests.
var getenv = os.Getenv

// ParseConfig parses and validates the stdin configuration. Every error
// wraps ErrBadConfig and says which field is wrong.
func ParseConfig(data []byte) (*Config, error) {
	var n NetConf
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %w", ErrBadConfig, err)
	}
	c := &Config{Net: n, Kubeconfig: n.IPAM.Kubeconfig, FailSafe: n.IPAM.FailSafe, Timeout: DefaultTimeout, LockDir: n.IPAM.LockDir, History: n.IPAM.History}
	if c.LockDir == "" {
		c.LockDir = DefaultLockDir
	}
	if c.Kubeconfig == "" {
		return nil, fmt.Errorf(`%w: ipam.kubeconfig is required (the path of the plugin's kubeconfig)`, ErrBadConfig)
	}
	switch c.FailSafe {
	case "":
		c.FailSafe = DefaultFailSafe
	case policy.FailSafeDefaults, policy.FailSafeRefuse:
	default:
		return nil, fmt.Errorf(`%w: ipam.failSafe is %q; use "defaults" or "refuse"`, ErrBadConfig, c.FailSafe)
	}
	if n.IPAM.Timeout != "" {
		d, err := time.ParseDuration(n.IPAM.Timeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: ipam.timeout %q is not a positive duration such as 30s", ErrBadConfig, n.IPAM.Timeout)
		}
		c.Timeout = d
	}
	if err := checkGracePeriod(n.IPAM, c.Timeout); err != nil {
		return nil, err
	}
	cooldown, err := parseCooldown(n.IPAM.Cooldown)
	if err != nil {
		return nil, err
	}
	c.Cooldown = cooldown
	c.Node, c.NodeFrom = n.IPAM.NodeName, "ipam.nodeName"
	for _, k := range []string{"NODENAME", "KUBERNETES_NODE_NAME"} {
		if c.Node == "" {
			c.Node, c.NodeFrom = getenv(k), "$"+k
		}
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("%w: no ipam.nodeName and no host name: %w", ErrBadConfig, err)
		}
		c.Node, c.NodeFrom = h, "the host name"
	}
	if msgs := validation.IsDNS1123Subdomain(c.Node); len(msgs) > 0 {
		return nil, fmt.Errorf("%w: node name %q: %s", ErrBadConfig, c.Node, msgs[0])
	}
	for i, r := range n.IPAM.Routes {
		if r == nil || r.Dst.IP == nil || len(r.Dst.Mask) == 0 {
			return nil, fmt.Errorf(`%w: ipam.routes[%d] has no "dst" (a CIDR such as 0.0.0.0/0)`, ErrBadConfig, i)
		}
		if r.GW != nil && (r.GW.To4() == nil) != (r.Dst.IP.To4() == nil) {
			return nil, fmt.Errorf(`%w: ipam.routes[%d]: gateway %s is not of the family of %s`, ErrBadConfig, i, r.GW, r.Dst.String())
		}
	}
	c.Routes = n.IPAM.Routes
	if n.RuntimeConfig != nil && n.RuntimeConfig.PodAnnotations != nil {
		c.PodAnnotations = n.RuntimeConfig.PodAnnotations
	}
	return c, nil
}

// parseCooldown parses ipam.cooldown: DefaultCooldown when absent.
func parseCooldown(v string) (time.Duration, error) {
	if v == "" {
		return DefaultCooldown, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%w: ipam.cooldown %q is not a duration such as 5m (how long a released address stays out of use; 0s turns the cooldown off)", ErrBadConfig, v)
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: ipam.cooldown %s is negative: use 0s to hand released addresses out again at once, or a positive duration such as 5m", ErrBadConfig, v)
	}
	return d, nil
}

// checkGracePeriod refuses a timeout the garbage collector's grace period
// (ipam.gcGracePeriod, when given) does not hold GracePeriodPerTimeout
// times: see GracePeriodPerTimeout.
func checkGracePeriod(c IPAMConfig, timeout time.Duration) error {
	if c.GCGracePeriod == "" {
		return nil
	}
	grace, err := time.ParseDuration(c.GCGracePeriod)
	if err != nil || grace <= 0 {
		return fmt.Errorf("%w: ipam.gcGracePeriod %q is not a positive duration such as 5m", ErrBadConfig, c.GCGracePeriod)
	}
	if timeout <= grace/GracePeriodPerTimeout {
		return nil
	}
	which := fmt.Sprintf("ipam.timeout %s", timeout)
	if c.Timeout == "" {
		which = fmt.Sprintf("ipam.timeout (default %s)", timeout)
	}
	return fmt.Errorf("%w: %s is more than half of ipam.gcGracePeriod %s, the garbage collector's grace period: the collector could free the addresses of an ADD still running, or of its retry; "+
		"lower ipam.timeout to at most %s or raise the grace period (the webhook's --gc-grace-period, chart value allocator.gc.gracePeriod) to at least %s",
		ErrBadConfig, which, grace, grace/GracePeriodPerTimeout, timeout*GracePeriodPerTimeout)
}
