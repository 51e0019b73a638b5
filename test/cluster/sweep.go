package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// dirPattern matches the clusters' directories (Start's os.MkdirTemp).
const dirPattern = "poolguard-cluster-*"

// ownerFile, in a cluster's directory, holds the PID of the process that
// started it and the kernel tunables as they were before: what Sweep
// needs to tell a stale cluster from a live one and to put the machine
// back.
const ownerFile = "owner.json"

type owner struct {
	PID      int               `json:"pid"`
	Tunables map[string]string `json:"tunables"`
	// Existed are the outsidePaths that existed before the cluster.
	Existed []string `json:"existed"`
}

// writeOwner records this process as the cluster's owner.
func (c *Cluster) writeOwner() error {
	o := owner{PID: os.Getpid(), Tunables: c.before.tunables, Existed: []string{}}
	for p := range c.before.paths {
		o.Existed = append(o.Existed, p)
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, ownerFile), b, 0o600)
}

// Sweep removes what clusters whose test process died without closing
// them (SIGKILL, a CI timeout) left on the machine: their components and
// shims, pods' processes, mounts, cgroups, network namespaces, libcni's
// cached results, the tunables the kubelet changed, and their directory.
// A cluster whose owner still runs is left alone. Call it before Start.
func Sweep() error {
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), dirPattern))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range dirs {
		var o owner
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err == nil {
			err = json.Unmarshal(b, &o)
		}
		if err == nil && alive(o.PID) {
			continue
		}
		if err != nil {
			// Killed between the directory and the owner file: nothing
			// but the directory was made, or another Start is at that
			// point right now; only an old directory is removed.
			if fi, serr := os.Stat(dir); serr != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		}
		errs = append(errs, sweepOne(dir, o))
	}
	return errors.Join(errs...)
}

// alive reports whether pid is a running process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// sweepOne tears down the stale cluster in dir, as Close would.
func sweepOne(dir string, o owner) error {
	name := filepath.Base(dir)
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	// The components, reparented when their test died.
	add(killMatching("processes of "+dir, dir))
	add(killCgroupProcs("/"+name, 20*time.Second))
	add(killShims(dir))
	add(unmountUnder(dir))
	add(removeCgroupRoot("/" + name))
	add(deleteNetns(name + "-fw"))
	add(deleteNetns(name))
	if o.Tunables != nil {
		add(restoreTunables(o.Tunables))
	}
	existed := map[string][]string{}
	for _, p := range o.Existed {
		existed[p] = []string{}
	}
	add(removeContainerLogLinks(dir, existed["/var/log/containers"]))
	if o.Existed != nil {
		add(removeCreatedOutside(existed))
	}
	add((&Cluster{Name: name, Dir: dir}).removeCNIResults())
	if len(errs) == 0 {
		add(os.RemoveAll(dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweeping the stale cluster %s: %w", dir, err)
	}
	return nil
}
