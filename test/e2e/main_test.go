package e2e

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
)

// cleanups run on a signal too: `go test` runs no t.Cleanup when it is
// interrupted, and a network namespace outlives the process that made it.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

// onInterrupt registers f to run, last registered first, when the test
// binary gets SIGINT or SIGTERM. The caller still removes it normally
// through t.Cleanup; f must tolerate running twice.
func onInterrupt(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/e2e creates network namespaces, veths and nftables rules and must run as root (sudo make test-e2e); failing rather than skipping")
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "e2e: %s: removing the lab and stopping the control plane\n", s)
		cleanupMu.Lock()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		os.Exit(1)
	}()
	os.Exit(m.Run())
}
