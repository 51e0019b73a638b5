package poolctl_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"poolguard.dev/poolguard/test/harness"
)

// The integration tests share one local control plane (a real
// kube-apiserver and etcd, poolguard's CRDs, no webhook: the pods are
// created with the annotations the webhook would write). It starts on the
// first test that asks for it, so the unit tests run without it.
var (
	envOnce sync.Once
	env     *harness.Env
	envErr  error
	// tempDir holds the kubeconfigs the tests write; removed at the end.
	tempDir string
)

func controlPlane(t testing.TB) *harness.Env {
	t.Helper()
	envOnce.Do(func() {
		if tempDir, envErr = os.MkdirTemp("", "kubectl-poolguard-test-"); envErr != nil {
			return
		}
		env, envErr = harness.Start(harness.Options{})
	})
	if envErr != nil {
		t.Fatalf("integration tests need the local control plane: %v", envErr)
	}
	return env
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if tempDir != "" {
		os.RemoveAll(tempDir)
	}
	os.Exit(code)
}
