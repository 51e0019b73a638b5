// Command etcd is the etcd server, built from the Go module proxy so the test
// harness and the demo need no release tarball.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
