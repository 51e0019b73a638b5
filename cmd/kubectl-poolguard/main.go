// Command kubectl-poolguard is the kubectl poolguard plugin: put it on
// PATH and run kubectl poolguard explain or kubectl poolguard drift. See
// package poolctl.
package main

import (
	"context"
	"os"
	"os/signal"

	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := poolctl.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
