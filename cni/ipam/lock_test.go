package ipam

import (
	"context"
	"testing"
	"time"
)

// TestNodeLock: a second holder waits for the first; a context ends the
// wait; an unusable directory degrades to no lock.
func TestNodeLock(t *testing.T) {
	dir := t.TempDir()
	warn := func(string, ...any) {}
	lock := nodeLock(dir, "n1", warn)
	unlock, err := lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx); err == nil {
		t.Fatal("second holder got the lock while the first held it")
	}
	// Another node's lock is independent.
	other, err := nodeLock(dir, "n2", warn)(context.Background())
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
	noLock := nodeLock("/proc/not-a-dir", "n1", func(string, ...any) { warned = true })
	u, err := noLock(context.Background())
	if err != nil || !warned {
		t.Fatalf("unusable lock dir: %v, warned %v", err, warned)
	}
	u()
}
