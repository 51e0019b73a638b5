package ipam

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// DefaultLockDir holds the node-local lock files (tmpfs: they must not
// outlive a reboot, and the kernel drops a lock when its process dies,
// even by SIGKILL).
const DefaultLockDir = "/run/poolguard-ipam"

// nodeLock returns the allocator's Serialize hook: a first-come,
// first-served lock among the node's plugin processes, in
// <dir>/<node>/queue.
//
// A plain flock is not fair: on release every waiter wakes and races for
// it, and with dozens of pods starting at once an unlucky ADD loses for
// seconds. So each comer takes a ticket and waits for the one before it:
// under a brief flock of queue/ticket it creates and flocks queue/<n+1>
// and records n+1 in queue/tail; then it flocks queue/<n> (held by the
// previous comer until it is done or dead; the kernel drops the flock of a
// dead process, even one killed by SIGKILL) and removes it. Unlocking
// releases queue/<n+1>, which wakes exactly the next comer.
//
// Each comer writes who it is (who: process and container) into its ticket,
// so that one that gives up waiting can say whom it waited for.
//
// The lock only saves wasted API writes; it guards nothing. If its files
// cannot be used the hook does nothing, and a comer that gives up waiting
// (its context ends) lets its successor through early: every write is
// still guarded by resourceVersion.
func nodeLock(dir, node, who string, warn func(msg string, args ...any)) func(context.Context) (func(), error) {
	q := filepath.Join(dir, node, "queue")
	return func(ctx context.Context) (func(), error) {
		mine, prev, err := takeTicket(q, who)
		if err != nil {
			warn("no node lock, allocating without it", "dir", q, "error", err)
			return func() {}, nil
		}
		unlock := func() { _ = syscall.Flock(int(mine.Fd()), syscall.LOCK_UN); mine.Close() }
		if err := waitFor(ctx, prev); err != nil {
			unlock()
			return nil, fmt.Errorf("waiting for node lock %s behind ticket %s, taken by %s (which holds the lock or waits for its own turn): %w", q, filepath.Base(prev), holder(prev), err)
		}
		return unlock, nil
	}
}

// holder is who took a ticket, as it wrote into it.
func holder(ticket string) string {
	b, err := os.ReadFile(ticket)
	if who := strings.TrimSpace(string(b)); err == nil && who != "" {
		return who
	}
	return "a plugin process that is gone or wrote nothing"
}

// takeTicket creates and locks this comer's ticket file, writes who into
// it, and returns it with the path of the previous comer's (empty for the
// first).
func takeTicket(q, who string) (mine *os.File, prev string, err error) {
	if err := os.MkdirAll(q, 0o700); err != nil {
		return nil, "", err
	}
	guard, err := os.OpenFile(filepath.Join(q, "ticket"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, "", err
	}
	defer guard.Close()
	// Held for a few syscalls only, so a blocking wait is fine.
	if err := syscall.Flock(int(guard.Fd()), syscall.LOCK_EX); err != nil {
		return nil, "", err
	}
	defer func() { _ = syscall.Flock(int(guard.Fd()), syscall.LOCK_UN) }()
	tail := filepath.Join(q, "tail")
	var n uint64
	if raw, err := os.ReadFile(tail); err == nil {
		n, _ = strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	}
	// Create and lock ours before publishing its number, so a ticket
	// number in tail always names a file that exists (until its
	// successor, and only it, removes it) or whose owner is gone.
	mine, err = os.OpenFile(filepath.Join(q, strconv.FormatUint(n+1, 10)), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, "", err
	}
	if err := syscall.Flock(int(mine.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		mine.Close()
		return nil, "", err
	}
	// Best effort: only an error message reads it.
	_, _ = mine.WriteAt([]byte(who+"\n"), 0)
	if err := os.WriteFile(tail, []byte(strconv.FormatUint(n+1, 10)), 0o600); err != nil {
		_ = syscall.Flock(int(mine.Fd()), syscall.LOCK_UN)
		mine.Close()
		return nil, "", err
	}
	if n == 0 {
		return mine, "", nil
	}
	return mine, filepath.Join(q, strconv.FormatUint(n, 10)), nil
}

// waitFor blocks until the previous comer's ticket is released, then
// removes its file.
func waitFor(ctx context.Context, prev string) error {
	if prev == "" {
		return nil
	}
	f, err := os.Open(prev)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // its comer never got further, or the queue was reset
	}
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err == nil {
			_ = os.Remove(prev)
		}
		f.Close()
		return err
	case <-ctx.Done():
		// Should the pending flock still succeed, let go at once.
		go func() {
			if err := <-done; err == nil {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			}
			f.Close()
		}()
		return ctx.Err()
	}
}
