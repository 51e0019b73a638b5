package poolctl

import (
	"testing"

	"k8s.io/client-go/rest"
)

// TestNoClientThrottling: the plugin's clients do not hold requests back
// (client-go's default of five a second held drift -A's pages back for
// seconds), unless the user set a rate.
func TestNoClientThrottling(t *testing.T) {
	c, err := Connect(&rest.Config{Host: "https://127.0.0.1:1"}, ModeNative)
	if err != nil {
		t.Fatal(err)
	}
	if rl := c.core.GetRateLimiter(); rl != nil {
		t.Errorf("the pods client throttles (%T)", rl)
	}
	if cfg := clientConfig(&rest.Config{}); cfg.QPS >= 0 {
		t.Errorf("QPS %v: the client throttles", cfg.QPS)
	}
	if cfg := clientConfig(&rest.Config{QPS: 50, Burst: 100}); cfg.QPS != 50 || cfg.Burst != 100 {
		t.Errorf("the user's rate is not kept: %v/%v", cfg.QPS, cfg.Burst)
	}
}
