package webhook_test

import (
	"flag"
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
	flag.Parse()
	if fuzzing() {
		// Fuzz targets test the handlers in memory; a control plane per
		// fuzz worker would only slow them down.
		os.Exit(m.Run())
	}
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

// fuzzing reports whether this binary runs as "go test -fuzz" or as one of
// its workers.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}
