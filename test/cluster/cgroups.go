package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is where the machine mounts its cgroup hierarchies (v1, one
// directory per controller, plus the v2 "unified" one of a hybrid setup).
const cgroupMount = "/sys/fs/cgroup"

// cgroupHierarchies lists the mounted hierarchies' directories.
func cgroupHierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupMount)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(cgroupMount, e.Name()))
		}
	}
	return out, nil
}

// createCgroupRoot creates the kubelet's cgroup root (a name like
// "/poolguard-cluster-xyz") in every hierarchy: the kubelet refuses a root
// missing from any. A new cpuset cgroup starts with no CPUs nor memory
// nodes, so those are copied from the machine's root.
func createCgroupRoot(root string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(h, root)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("initialising %s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// cgroupProcs lists the processes in root's cgroup tree, in any hierarchy.
func cgroupProcs(root string) []int {
	hs, _ := cgroupHierarchies()
	seen := map[int]bool{}
	for _, h := range hs {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				// A cgroup removed while walking, or a hierarchy
				// without the root: nothing to kill there.
				return nil //nolint:nilerr // best effort, see above
			}
			if d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out
}

// killCgroupProcs kills every process in root's cgroup tree (the pods'
// containers, once the kubelet is gone) and waits until none is left.
func killCgroupProcs(root string, timeout time.Duration) error {
	return poll("processes in cgroup "+root+" gone", timeout, func() (bool, error) {
		pids := cgroupProcs(root)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(pids) > 0 {
			return false, fmt.Errorf("still running: %v", pids)
		}
		return true, nil
	})
}

// removeCgroupRoot removes root's cgroup tree from every hierarchy,
// deepest first (a cgroup is removed with rmdir, once empty of processes
// and children).
func removeCgroupRoot(root string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// Children sort after their parents; remove in reverse.
		sort.Strings(dirs)
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := removeCgroup(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroup rmdirs one cgroup, retrying briefly: the kernel releases a
// cgroup a moment after its last process dies.
func removeCgroup(dir string) error {
	return poll("removing cgroup "+dir, 5*time.Second, func() (bool, error) {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return true, nil
		}
		return false, err
	})
}
