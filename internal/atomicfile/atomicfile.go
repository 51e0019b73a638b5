// Package atomicfile replaces files so that a reader sees the old content or
// the new, never a part: the CNI installer's plugin and kubeconfig on a
// node, the webhook's certificate files.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes b to a temporary file in path's directory (same filesystem,
// so the rename is atomic), sets its mode before it becomes visible, syncs
// it, and renames it over path.
func Write(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer func() { _ = os.Remove(name) }() // a no-op once renamed
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, path)
}
