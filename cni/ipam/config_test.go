package ipam

import (
	"errors"
	"os"
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
	} {
		if _, err := ParseConfig([]byte(bad)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v", bad, err)
		}
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
