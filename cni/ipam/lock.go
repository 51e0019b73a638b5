package ipam

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultLockDir holds the node-local lock files (tmpfs: they must not
// outlive a reboot, and the kernel drops a lock when its process dies,
// even by SIGKILL).
const DefaultLockDir = "/run/poolguard-ipam"

// nodeLock returns the allocator's Serialize hook: an exclusive flock on
// <dir>/<node>.lock. If the lock file cannot be opened the hook does
// nothing: the lock only saves wasted API writes, it guards nothing.
func nodeLock(dir, node string, warn func(msg string, args ...any)) func(context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			warn("no node lock, allocating without it", "dir", dir, "error", err)
			return func() {}, nil
		}
		f, err := os.OpenFile(filepath.Join(dir, node+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			warn("no node lock, allocating without it", "dir", dir, "error", err)
			return func() {}, nil
		}
		done := make(chan error, 1)
		go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
		select {
		case err := <-done:
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("node lock %s: %w", f.Name(), err)
			}
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		case <-ctx.Done():
			// Should the pending flock still succeed, let go at once.
			go func() {
				if <-done == nil {
					_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				}
				f.Close()
			}()
			return nil, fmt.Errorf("waiting for node lock %s: %w", f.Name(), ctx.Err())
		}
	}
}
