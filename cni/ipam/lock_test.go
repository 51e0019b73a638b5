package ipam

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNodeLock: a second holder waits for the first; a context ends the
// wait; an unusable directory degrades to no lock.
func TestNodeLock(t *testing.T) {
	dir := t.TempDir()
	warn := func(string, ...any) {}
	lock := nodeLock(dir, "n1", "pid 1 for container first", warn)
	unlock, err := lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx); err == nil {
		t.Fatal("second holder got the lock while the first held it")
	} else if !strings.Contains(err.Error(), "taken by pid 1 for container first") {
		t.Errorf("a timed-out wait does not say whom it waited for: %v", err)
	}
	// Another node's lock is independent.
	other, err := nodeLock(dir, "n2", "pid 2", warn)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	other()
	unlock()
	again, err := lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	again()

	warned := false
	noLock := nodeLock("/proc/not-a-dir", "n1", "pid 3", func(string, ...any) { warned = true })
	u, err := noLock(context.Background())
	if err != nil || !warned {
		t.Fatalf("unusable lock dir: %v, warned %v", err, warned)
	}
	u()
}

// TestNodeLockIsFirstComeFirstServed: waiters get the lock in the order
// they asked for it, not in the order the kernel wakes them.
func TestNodeLockIsFirstComeFirstServed(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, "n", "queue")
	first, err := nodeLock(dir, "n", "pid 4", func(string, ...any) {})(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		mu       sync.Mutex
		order    []int
		released atomic.Bool // the first holder has let go
		wg       sync.WaitGroup
	)
	for i := range n {
		who := fmt.Sprintf("waiter %d", i)
		lock := nodeLock(dir, "n", who, func(string, ...any) {})
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := lock(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			if !released.Load() {
				t.Errorf("%s got the lock while the first holder held it", who)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			unlock()
		}()
		// Waiter i has asked once it has taken its ticket, i+2 (the
		// first holder has 1): wait for that before starting the next,
		// so that they ask in the order 0..n-1.
		waitForTicket(t, q, uint64(i+2), who)
	}
	released.Store(true)
	first()
	wg.Wait()
	if !slices.IsSorted(order) || len(order) != n {
		t.Fatalf("lock granted in order %v, want 0..%d", order, n-1)
	}
}

// TestNodeLockSurvivesADeadHolder: a holder that dies without unlocking (its
// file closed, as the kernel does for a killed process) lets the next
// comer through, and the queue goes on.
func TestNodeLockSurvivesADeadHolder(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, "n", "queue")
	mine, _, err := takeTicket(q, "pid 6, killed")
	if err != nil {
		t.Fatal(err)
	}
	lock := nodeLock(dir, "n", "pid 5", func(string, ...any) {})
	got := make(chan func(), 1)
	go func() {
		unlock, err := lock(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- unlock
	}()
	// The waiter took the ticket after the holder's, and the kernel shows
	// it blocked on the holder's flock: only now is "not yet" an answer.
	waitForTicket(t, q, 2, "pid 5")
	waitForBlockedFlock(t, filepath.Join(q, "1"))
	select {
	case <-got:
		t.Fatal("got the lock while its holder lived")
	default:
	}
	mine.Close() // the holder dies
	select {
	case unlock := <-got:
		unlock()
	case <-time.After(5 * time.Second):
		t.Fatal("the lock of a dead holder was never passed on")
	}
	again, err := lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	again()
	if entries, _ := os.ReadDir(q); len(entries) > 3 { // ticket, tail, the last comer's file
		t.Fatalf("queue files pile up: %v", entries)
	}
}

// waitForTicket waits until the queue's tail names ticket n and that
// ticket's file says who took it: the comer who is has taken its place
// in the queue (takeTicket writes the ticket, then tail). Bounded: a comer
// that never queues fails the test, naming what the queue holds.
func waitForTicket(t *testing.T, q string, n uint64, who string) {
	t.Helper()
	want := strconv.FormatUint(n, 10)
	var tail, holder []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		tail, _ = os.ReadFile(filepath.Join(q, "tail"))
		holder, _ = os.ReadFile(filepath.Join(q, want))
		if strings.TrimSpace(string(tail)) == want && strings.TrimSpace(string(holder)) == who {
			return
		}
	}
	t.Fatalf("%q never took ticket %s in %s within 10s: tail says %q, ticket %s holds %q", who, want, q, tail, want, holder)
}

// waitForBlockedFlock waits until /proc/locks shows a process blocked on
// an flock of file, as a comer waiting for the one before it is.
func waitForBlockedFlock(t *testing.T, file string) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	// /proc/locks lines end "<pid> <major>:<minor>:<inode> <start> <end>",
	// the device in hex; a blocked waiter's starts "<n>: -> FLOCK".
	id := fmt.Sprintf(" %02x:%02x:%d ", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	var locks []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var err error
		if locks, err = os.ReadFile("/proc/locks"); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(locks), "\n") {
			if strings.Contains(l, "-> FLOCK") && strings.Contains(l, id) {
				return
			}
		}
	}
	t.Fatalf("nobody blocked on the flock of %s (%s) within 10s; /proc/locks:\n%s", file, strings.TrimSpace(id), locks)
}
