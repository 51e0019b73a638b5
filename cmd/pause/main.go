// Command pause is the sandbox ("pause") container of poolguard's local test
// cluster: it holds the pod's namespaces open and does nothing else. It
// waits for SIGTERM or SIGINT and exits 0, and reaps the children it
// inherits when it is PID 1 of a shared PID namespace
// (shareProcessNamespace), like the upstream pause. `make pause-image`
// builds it into an image.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	// Registered before the readiness line below, so that whoever waits
	// for the line can signal without racing the default (fatal) action.
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	fmt.Fprintln(os.Stderr, "pause: waiting for SIGTERM or SIGINT")
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: %v, exiting\n", s)
		return
	}
}

// reap collects every exited child without blocking: one SIGCHLD may stand
// for several exits.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
