// Command pause is the cluster's pod sandbox image's only binary: it holds
// the pod's namespaces open until it is told to stop, like Kubernetes'
// pause container. It is built static and packed into an image by the
// test, so no image is pulled from the internet.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
