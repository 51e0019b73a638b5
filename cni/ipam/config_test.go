package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/policy"
)

func TestParseConfig(t *testing.T) {
	getenv = func(k string) string {
		if k == "NODENAME" {
			return "env-node"
		}
		return ""
	}
	defer func() { getenv = os.Getenv }()
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"k8s","type":"bridge","ipam":{"type":"poolguard-ipam","kubeconfig":"/k","timeout":"5s","failSafe":"refuse"},
		"runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"a":"b"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != "env-node" || c.Timeout != 5*time.Second || c.FailSafe != policy.FailSafeRefuse || c.PodAnnotations["a"] != "b" || c.Net.Name != "k8s" {
		t.Fatalf("%+v", c)
	}
	c, err = ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"kubeconfig":"/k","nodeName":"n1"}}`))
	if err != nil || c.Node != "n1" || c.FailSafe != policy.FailSafeDefaults || c.Timeout != DefaultTimeout {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{
		`{`,
		`{"ipam":{}}`,
		`{"ipam":{"kubeconfig":"/k","nodeName":"n","failSafe":"allow"}}`,
		`{"ipam":{"kubeconfig":"/k","nodeName":"n","timeout":"soon"}}`,
		`{"ipam":{"kubeconfig":"/k","nodeName":"n","timeout":"-1s"}}`,
		`{"ipam":{"kubeconfig":"/k","nodeName":"Not_A_Node"}}`,
		`{"ipam":{"kubeconfig":"/k","nodeName":"n","routes":[{"gw":"169.254.1.1"}]}}`,
		`{"ipam":{"kubeconfig":"/k","nodeName":"n","routes":[{"dst":"0.0.0.0/0","gw":"fe80::1"}]}}`,
		`{"ipam":{"kubeconfig":"/k","nodeName":"n","routes":[{"dst":"nowhere"}]}}`,
	} {
		if _, err := ParseConfig([]byte(bad)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestCooldownConfig: ipam.cooldown defaults to 5m, "0s" turns it off, and
// a negative or unparsable one is refused as a configuration error saying
// what to write.
func TestCooldownConfig(t *testing.T) {
	conf := func(cooldown string) []byte {
		if cooldown == "" {
			return []byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"kubeconfig":"/k","nodeName":"n1"}}`)
		}
		return []byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"kubeconfig":"/k","nodeName":"n1","cooldown":"` + cooldown + `"}}`)
	}
	for in, want := range map[string]time.Duration{"": DefaultCooldown, "0s": 0, "0": 0, "90s": 90 * time.Second, "1h": time.Hour} {
		c, err := ParseConfig(conf(in))
		if err != nil || c.Cooldown != want {
			t.Errorf("cooldown %q: %v, %v; want %s", in, c.Cooldown, err, want)
		}
	}
	if DefaultCooldown != 5*time.Minute {
		t.Errorf("DefaultCooldown %s, want 5m", DefaultCooldown)
	}
	for in, want := range map[string]string{
		"-1m":  "ipam.cooldown -1m is negative: use 0s to hand released addresses out again at once",
		"soon": `ipam.cooldown "soon" is not a duration such as 5m`,
		"5":    `ipam.cooldown "5" is not a duration`,
	} {
		_, err := ParseConfig(conf(in))
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("cooldown %q: %v, want ErrBadConfig saying %q", in, err, want)
		}
	}
}

// TestResultRoutes: the configured routes reach the result, in order and
// with their scope, but only those of a family the pod has an address of.
func TestResultRoutes(t *testing.T) {
	c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"kubeconfig":"/k","nodeName":"n1","routes":[
		{"dst":"169.254.1.1/32","scope":253},{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"::/0","gw":"fe80::1"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	claim := &allocator.Claim{Addresses: []allocator.Assigned{{Addr: netip.MustParseAddr("198.51.100.7"), PoolCIDR: netip.MustParsePrefix("198.51.100.0/24")}}}
	r := resultOf(claim, c.Routes)
	if len(r.IPs) != 1 || r.IPs[0].Address.String() != "198.51.100.7/24" || r.IPs[0].Gateway != nil {
		t.Fatalf("IPs %v", r.IPs)
	}
	var got []string
	for _, rt := range r.Routes {
		s := rt.Dst.String() + " via " + rt.GW.String()
		if rt.Scope != nil {
			s += fmt.Sprintf(" scope %d", *rt.Scope)
		}
		got = append(got, s)
	}
	if want := []string{"169.254.1.1/32 via <nil> scope 253", "0.0.0.0/0 via 169.254.1.1"}; !slices.Equal(got, want) {
		t.Errorf("routes %q, want %q", got, want)
	}
	claim.Addresses = append(claim.Addresses, allocator.Assigned{Addr: netip.MustParseAddr("2001:db8::7"), PoolCIDR: netip.MustParsePrefix("2001:db8::/64")})
	if r := resultOf(claim, c.Routes); len(r.Routes) != 3 {
		t.Errorf("dual stack: %d routes, want 3", len(r.Routes))
	}
	if r := resultOf(claim, nil); len(r.Routes) != 0 {
		t.Errorf("no routes configured: %v", r.Routes)
	}
}

func TestParsePod(t *testing.T) {
	p, err := ParsePod("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1")
	if err != nil || p.Namespace != "ns" || p.Name != "web-0" || p.UID != "u-1" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"", "K8S_POD_NAMESPACE=ns", "K8S_POD_NAMESPACE=NS;K8S_POD_NAME=x", "garbage"} {
		if _, err := ParsePod(bad); !errors.Is(err, ErrBadArgs) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code uint
	}{
		{ErrBadConfig, 7},
		{ErrBadArgs, 4},
		{allocator.ErrExhausted, 11},
		{allocator.ErrUnavailable, 11},
		{allocator.ErrBusy, 11},
		{allocator.ErrReleasing, 11},
		{policy.ErrNoPool, CodePoolRefused},
		{policy.ErrNotFrozen, CodeNotFrozen},
		{fmt.Errorf("pod ns/p: %w: no Node is named \"x\"", ErrNodeNotRegistered), 7},
		{errors.New("x"), 999},
	} {
		if got := codeFor(tc.err); got != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, got, tc.code)
		}
	}
}

// TestParseConfigGracePeriod: with the garbage collector's grace period
// (ipam.gcGracePeriod) given, a timeout above half of it is refused, with
// both fields and the values that would do; without it, nothing is
// checked.
func TestParseConfigGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		name, ipam string
		want       []string // empty: accepted
	}{
		{"no grace period: no check", `"timeout":"10m"`, nil},
		{"default timeout under the default grace", `"gcGracePeriod":"5m"`, nil},
		{"exactly half", `"timeout":"30s","gcGracePeriod":"1m"`, nil},
		{"compound durations", `"timeout":"45s","gcGracePeriod":"1m30s"`, nil},
		{"a short timeout under a short grace", `"timeout":"5s","gcGracePeriod":"10s"`, nil},
		{"just above half", `"timeout":"30001ms","gcGracePeriod":"1m"`,
			[]string{"ipam.timeout 30.001s is more than half of ipam.gcGracePeriod 1m0s", "at most 30s", "at least 1m0.002s"}},
		{"the default timeout above half", `"gcGracePeriod":"45s"`,
			[]string{"ipam.timeout (default 30s)", "ipam.gcGracePeriod 45s", "at most 22.5s", "allocator.gc.gracePeriod", "--gc-grace-period"}},
		{"timeout above the grace period", `"timeout":"10m","gcGracePeriod":"5m"`, []string{"ipam.timeout 10m0s", "ipam.gcGracePeriod 5m0s"}},
		{"grace period no duration", `"gcGracePeriod":"5"`, []string{`ipam.gcGracePeriod "5"`, "not a positive duration"}},
		{"grace period zero", `"gcGracePeriod":"0s"`, []string{`ipam.gcGracePeriod "0s"`}},
		{"grace period negative", `"gcGracePeriod":"-5m"`, []string{`ipam.gcGracePeriod "-5m"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"kubeconfig":"/k","nodeName":"n1",` + tc.ipam + `}}`))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.Timeout <= 0 {
					t.Fatalf("timeout %s", c.Timeout)
				}
				return
			}
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v, want ErrBadConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
		})
	}
}

// TestNodeFrom: the configuration says where the node name came from, for
// the error that names a node the API server does not know.
func TestNodeFrom(t *testing.T) {
	env := map[string]string{}
	getenv = func(k string) string { return env[k] }
	defer func() { getenv = os.Getenv }()
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	for _, tc := range []struct {
		nodeName       string
		env            map[string]string
		want, wantFrom string
	}{
		{"n1", map[string]string{"NODENAME": "n2"}, "n1", "ipam.nodeName"},
		{"", map[string]string{"NODENAME": "n2", "KUBERNETES_NODE_NAME": "n3"}, "n2", "$NODENAME"},
		{"", map[string]string{"KUBERNETES_NODE_NAME": "n3"}, "n3", "$KUBERNETES_NODE_NAME"},
		{"", nil, host, "the host name"},
	} {
		env = tc.env
		c, err := ParseConfig([]byte(`{"ipam":{"kubeconfig":"/k","nodeName":"` + tc.nodeName + `"}}`))
		if err != nil {
			if tc.wantFrom == "the host name" {
				t.Skipf("the host name %q is no node name: %v", host, err)
			}
			t.Fatal(err)
		}
		if c.Node != tc.want || c.NodeFrom != tc.wantFrom {
			t.Errorf("nodeName %q, env %v: node %q from %q, want %q from %q", tc.nodeName, tc.env, c.Node, c.NodeFrom, tc.want, tc.wantFrom)
		}
	}
}
