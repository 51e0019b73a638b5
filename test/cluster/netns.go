package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"poolguard.dev/poolguard/test/netlab"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/var/run/netns"

// nodeLink is the node's own interface, carrying the node's address: the
// kubelet refuses a loopback node IP. It is one end of a veth pair whose
// other end (nodeLinkPeer) stays in the namespace too: this kernel has no
// dummy interfaces, and the pair leads nowhere outside.
const (
	nodeLink     = "node0"
	nodeLinkPeer = "node0-peer"
)

// createNodeNetns makes the node's network namespace: loopback up, and the
// node's address on its own interface.
func createNodeNetns(name string, nodeIP netip.Addr) error {
	steps := [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "link", "add", nodeLink, "type", "veth", "peer", "name", nodeLinkPeer},
		{"-n", name, "addr", "add", netip.PrefixFrom(nodeIP, nodeIP.BitLen()).String(), "dev", nodeLink},
		{"-n", name, "link", "set", nodeLinkPeer, "up"},
		{"-n", name, "link", "set", nodeLink, "up"},
		// Components that look for the default route's interface find the
		// node's; it leads nowhere outside the namespace.
		{"-n", name, "route", "add", "default", "dev", nodeLink},
	}
	for _, s := range steps {
		if _, err := netlab.Run("ip", s...); err != nil {
			return err
		}
	}
	return nil
}

// deleteNetns removes a named network namespace if it exists.
func deleteNetns(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); os.IsNotExist(err) {
		return nil
	}
	_, err := netlab.Run("ip", "netns", "delete", name)
	return err
}

// netnsDialer returns a dial function whose sockets are opened inside the
// network namespace at path, for clients in the test process. A socket
// stays in the namespace it was created in, whatever thread uses it later.
//
// The dialing thread goes back to its own namespace before it is unlocked:
// a thread discarded instead would fire the Pdeathsig of every component
// that happened to be forked from it, killing the cluster.
func netnsDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			home, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{err: err}
				return
			}
			defer func() { _ = home.Close() }()
			target, err := os.Open(path)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{err: err}
				return
			}
			defer func() { _ = target.Close() }()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{err: fmt.Errorf("entering network namespace %s: %w", path, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
			// Back home, the thread may serve other goroutines; if that
			// fails it stays locked and Go discards it with this one.
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
		r := <-ch
		return r.c, r.err
	}
}
