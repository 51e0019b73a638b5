package ipam

import (
	"errors"
	"testing"
	"time"
)

// FuzzParseConfig: any input either parses into a usable configuration or
// fails with ErrBadConfig; it never panics.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"type":"poolguard-ipam","kubeconfig":"/k","nodeName":"n1"}}`))
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"k8s","ipam":{"kubeconfig":"/k","nodeName":"n1","failSafe":"refuse","timeout":"1m"},"runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"ipam.poolguard.dev/provenance":"{}"}}}`))
	f.Add([]byte(`{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"ipam":{"kubeconfig":"/k","nodeName":"n"}}`))
	f.Add([]byte(`{"ipam":{"kubeconfig":"/k","nodeName":"n","timeout":"9999999999h"}}`))
	f.Add([]byte(`{"ipam":{"kubeconfig":"/k","nodeName":"n","timeout":"1m","gcGracePeriod":"90s"}}`))
	f.Add([]byte(`{"ipam":{"kubeconfig":"/k","nodeName":"n","gcGracePeriod":"1m"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error does not wrap ErrBadConfig: %v", err)
			}
			return
		}
		if c.Kubeconfig == "" || c.Node == "" || c.Timeout <= 0 || (c.FailSafe != "defaults" && c.FailSafe != "refuse") {
			t.Fatalf("accepted an unusable configuration: %+v", c)
		}
		if g, err := time.ParseDuration(c.Net.IPAM.GCGracePeriod); err == nil && c.Timeout > g/GracePeriodPerTimeout {
			t.Fatalf("accepted timeout %s under a grace period of %s", c.Timeout, g)
		}
	})
}
