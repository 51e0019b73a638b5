package webhook_test

import (
	"fmt"
	"os"
	"testing"

	"poolguard.dev/poolguard/test/harness"
)

// env is the control plane shared by the integration tests of this package:
// a real kube-apiserver and etcd, with the webhook served over TLS and
// registered through real webhook configurations.
var env *harness.Env

func TestMain(m *testing.M) {
	var err error
	env, err = harness.Start(harness.Options{Webhook: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration tests need the local control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
