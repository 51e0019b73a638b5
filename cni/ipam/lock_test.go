package ipam

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
	lock := nodeLock(t.TempDir(), "n", "pid 4", func(string, ...any) {})
	first, err := lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		queued := make(chan struct{})
		go func() {
			defer wg.Done()
			// The ticket is taken before lock blocks; wait for this
			// waiter to be queued before starting the next.
			go func() { time.Sleep(20 * time.Millisecond); close(queued) }()
			unlock, err := lock(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			unlock()
		}()
		<-queued
	}
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
	select {
	case <-got:
		t.Fatal("got the lock while its holder lived")
	case <-time.After(100 * time.Millisecond):
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
