// Command demo (make demo) tells poolguard's story on a real single-node
// cluster started on this machine (package cluster: etcd, kube-apiserver,
// controller manager, scheduler, kube-proxy, containerd and a kubelet, in
// a private network namespace): the chart's image built from this
// checkout, helm install, a trusted Deployment behind a legacy firewall,
// what kubectl refuses, a recreated sandbox, a static pod, an upgrade under
// load and an uninstall. The steps are package story's, which
// TestHelmInstallOnNode asserts too; the demo shows the commands a person
// would type and their output, and stops at the first step that does not
// behave as told. It removes the cluster on every path (Ctrl-C included)
// and checks that the machine is as it found it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/cluster/story"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo complete: the cluster is stopped and removed, and the machine is as the demo found it (checked).")
}

func run() (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the demo runs containerd and a kubelet: run it as root (sudo make demo)")
	}
	// cert-manager's CA injector logs through controller-runtime's global
	// logger; the demo shows commands, not controller logs.
	ctrllog.SetLogger(logr.Discard())
	// What a killed earlier run left behind (its processes, mounts,
	// network namespaces) would collide with this one.
	if err := cluster.Sweep(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	// A signal, also during Start before the cluster is handed back,
	// ends the step and tears down what has been started.
	go func() {
		if s, ok := <-sig; ok {
			fmt.Fprintf(os.Stderr, "\n%s: stopping the cluster and cleaning the machine\n", s)
			cancel()
			if err := cluster.CloseAll(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}()

	fmt.Println("Starting a single-node cluster on this machine, in its own network namespace: etcd, kube-apiserver,")
	fmt.Println("kube-controller-manager, kube-scheduler, kube-proxy and the kubelet built from the Go module proxy into bin/,")
	fmt.Println("containerd and runc from Debian. Its pod network is routed (" + story.General.String() + ", " + story.Trusted.String() + ") and has no CNI")
	fmt.Println("configuration yet: installing poolguard writes it.")
	start := time.Now()
	c, err := cluster.Start(cluster.Config{Routed: story.Network()})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\nStopping the cluster and removing everything it made...")
		err = errors.Join(err, c.Close(), c.Leftovers())
		if ctx.Err() != nil {
			err = errors.Join(err, errors.New("interrupted"))
		}
	}()
	fmt.Printf("cluster up in %s; node %s registered\n", time.Since(start).Round(time.Millisecond), c.NodeName)

	s, err := story.New(c, os.Stdout, func(format string, args ...any) {
		fmt.Printf("  [measured] "+format+"\n", args...)
	})
	if err != nil {
		return err
	}
	for i, step := range s.Steps() {
		fmt.Printf("\n=== %d. %s\n", i+1, step.Title)
		if step.Why != "" {
			fmt.Println(step.Why)
		}
		if err := step.Run(ctx); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, step.Title, err)
		}
		fmt.Println("  ok")
	}
	return nil
}
