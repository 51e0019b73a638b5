package cluster

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// removeContainerLogLinks removes the links the kubelet made in
// /var/log/containers (a path it does not let one configure) to its pods'
// logs in dir, and the directory itself if the kubelet created it.
func removeContainerLogLinks(dir string, before []string) error {
	const logs = "/var/log/containers"
	var errs []error
	for _, e := range readDirNames(logs) {
		p := filepath.Join(logs, e)
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			errs = append(errs, os.Remove(p))
		}
	}
	if before == nil {
		if entries := readDirNames(logs); len(entries) == 0 {
			if err := os.Remove(logs); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeCreatedOutside removes, from the outsidePaths that did not exist
// before the cluster (before has no entry for them), what the components
// create there whatever their configuration says: the kubelet's device
// plugin socket /var/lib/kubelet/device-plugins/kubelet.sock (a constant in
// its device manager) and the directories containerd's shims make for
// their sockets under /run/containerd/s. Only sockets and empty
// directories are removed: a file there is someone else's, and Leftovers
// reports it.
func removeCreatedOutside(before map[string][]string) error {
	var errs []error
	for _, root := range outsidePaths {
		if _, existed := before[root]; existed {
			continue
		}
		if _, err := os.Lstat(root); err != nil {
			continue
		}
		var paths []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				paths = append(paths, p)
			}
			return nil
		})
		// Children sort after their parents: remove in reverse.
		sort.Strings(paths)
		for i := len(paths) - 1; i >= 0; i-- {
			fi, err := os.Lstat(paths[i])
			if err != nil {
				continue
			}
			if fi.IsDir() && len(readDirNames(paths[i])) == 0 || fi.Mode()&fs.ModeSocket != 0 {
				if err := os.Remove(paths[i]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}
