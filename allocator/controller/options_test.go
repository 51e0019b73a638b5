package controller_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"poolguard.dev/poolguard/allocator/controller"
)

// TestOptionsValidate: poolguard-webhook refuses to start the collector
// with a grace period no CNI plugin timeout fits in twice, saying which
// flag and what to keep it above; zero (the default) and the minimum pass.
func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		grace time.Duration
		ok    bool
	}{
		{0, true},
		{controller.MinGracePeriod, true},
		{controller.DefaultGracePeriod, true},
		{controller.MinGracePeriod - time.Millisecond, false},
		{time.Second, false},
		{-time.Minute, false},
	} {
		err := controller.Options{GracePeriod: tc.grace}.Validate()
		if tc.ok {
			if err != nil {
				t.Errorf("grace %s: %v", tc.grace, err)
			}
			continue
		}
		if !errors.Is(err, controller.ErrInvalidOptions) {
			t.Fatalf("grace %s: %v, want ErrInvalidOptions", tc.grace, err)
		}
		for _, s := range []string{"--gc-grace-period " + tc.grace.String(), "minimum 10s", "twice the CNI plugin's timeout", "allocator.gc.gracePeriod"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("grace %s: %q does not say %q", tc.grace, err, s)
			}
		}
	}
}
