package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"poolguard.dev/poolguard/allocator"
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
	if c.Node != "env-node" || c.Timeout != 5*time.Second || c.FailSafe != allocator.FailSafeRefuse || c.PodAnnotations["a"] != "b" || c.Net.Name != "k8s" {
		t.Fatalf("%+v", c)
	}
	c, err = ParseConfig([]byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"kubeconfig":"/k","nodeName":"n1"}}`))
	if err != nil || c.Node != "n1" || c.FailSafe != allocator.FailSafeDefaults || c.Timeout != DefaultTimeout {
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
		{allocator.ErrNoPool, CodePoolRefused},
		{allocator.ErrNotFrozen, CodeNotFrozen},
		{errors.New("x"), 999},
	} {
		if got := codeFor(tc.err); got != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, got, tc.code)
		}
	}
}
