package netlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/var/run/netns"

// NetnsPath is the bind-mounted path of a named network namespace, the
// CNI_NETNS a runtime would pass; a path is returned as it is.
func NetnsPath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(netnsDir, name)
}

// Run runs a command to completion and returns its output, or an error
// with both. The lab and the test cluster run ip, nft and ctr with it.
func Run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()+out.String()))
	}
	return out.String(), nil
}

// ip runs `ip args...`.
func ip(args ...string) (string, error) { return Run("ip", args...) }

// inNetns runs fn on an OS thread that has entered the named network
// namespace (or the namespace at a path). Sockets fn creates belong to that
// namespace for their whole life, whatever thread later uses them.
//
// The thread goes back to its own namespace before it is unlocked, and is
// discarded (left locked) only when that fails: a discarded thread fires
// the Pdeathsig of every process that happened to be forked from it, and
// the test cluster's components are started that way, so a casual
// discard would kill, say, the controller manager in the middle of a test.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open(NetnsPath(name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", name, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// sysctl writes a sysctl inside a namespace.
func sysctl(netns, key, value string) error {
	_, err := ip("netns", "exec", netns, "sysctl", "-q", "-w", key+"="+value)
	return err
}
