package allocator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/memstore"
)

// clock is a settable clock for Allocator.Now.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

var cooldownEpoch = time.Date(2026, 11, 29, 14, 27, 5, 0, time.UTC)

// TestCooldownSharedPool: in a small shared pool, an address released by
// DEL is not handed out again within the cooldown; the pool's exhaustion
// error says that cooldown is why, how many addresses and when the first
// is free again; after the cooldown the address comes back.
func TestCooldownSharedPool(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	p := mkPool(t, "fw", "198.51.100.0/30", 26) // 2 usable addresses
	clk := &clock{t: cooldownEpoch}
	a := &allocator.Allocator{Store: st, Node: "n", Cooldown: 5 * time.Minute, Now: clk.Now}
	add := func(ctr string) (*allocator.Claim, error) {
		return a.Assign(ctx, allocator.Request{ContainerID: ctr, IfName: "eth0", Pod: allocator.PodRef{Namespace: "ns", Name: ctr}, Wants: []allocator.Want{want(p)}})
	}
	first, err := add("one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := add("two"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "", "one", "eth0"); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(4*time.Minute + 59*time.Second)
	_, err = add("three")
	const msg = `pod ns/three: IPv4: pool exhausted: no free address in "fw" (198.51.100.0/30): 1 address cooling down after release (ipam.cooldown 5m0s), the first free again at 2026-11-29T14:32:05Z`
	if !errors.Is(err, allocator.ErrExhausted) || err.Error() != msg {
		t.Fatalf("ADD within the cooldown: %v\nwant %s", err, msg)
	}
	clk.t = clk.t.Add(time.Second)
	c, err := add("three")
	if err != nil {
		t.Fatalf("ADD after the cooldown: %v", err)
	}
	if c.Addresses[0].Addr != first.Addresses[0].Addr {
		t.Fatalf("after the cooldown got %s, want the released %s", c.Addresses[0].Addr, first.Addresses[0].Addr)
	}
	if b := st.Blocks()[0]; len(b.Released) != 0 {
		t.Fatalf("the allocation kept release records that hold nothing back: %v", b.Released)
	}
}

// TestCooldownWhenBorrowing: a node with no block of its own, in a pool
// whose every block is claimed, borrows only addresses that are not
// cooling down; the exhaustion error counts the cooling addresses of every
// block and names the earliest.
func TestCooldownWhenBorrowing(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	p := mkPool(t, "p", "198.51.100.16/28", 29) // two blocks, 7 usable each
	clk := &clock{t: cooldownEpoch}
	node := func(name string) *allocator.Allocator {
		return &allocator.Allocator{Store: st, Node: name, Cooldown: 5 * time.Minute, Now: clk.Now}
	}
	add := func(a *allocator.Allocator, ctr string) error {
		_, err := a.Assign(ctx, allocator.Request{ContainerID: ctr, IfName: "eth0", Pod: allocator.PodRef{Namespace: "ns", Name: ctr}, Wants: []allocator.Want{want(p)}})
		return err
	}
	a, b, c := node("node-a"), node("node-b"), node("node-c")
	for i := 0; i < 7; i++ {
		if err := add(a, fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
		if err := add(b, fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Release(ctx, "", "b3", "eth0"); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	if err := a.Release(ctx, "", "a5", "eth0"); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Minute)
	err := add(c, "c0")
	if !errors.Is(err, allocator.ErrExhausted) || !strings.Contains(err.Error(), `no free address in "p" (198.51.100.16/28): 2 addresses cooling down after release (ipam.cooldown 5m0s), the first free again at 2026-11-29T14:32:05Z`) {
		t.Fatalf("borrowing within the cooldown: %v", err)
	}
	clk.t = cooldownEpoch.Add(5 * time.Minute)
	if err := add(c, "c0"); err != nil {
		t.Fatalf("borrowing once the first release has cooled down: %v", err)
	}
	err = add(c, "c1")
	if !errors.Is(err, allocator.ErrExhausted) || !strings.Contains(err.Error(), "1 address cooling down after release (ipam.cooldown 5m0s), the first free again at 2026-11-29T14:33:05Z") {
		t.Fatalf("borrowing again: %v", err)
	}
}

// TestRollbackDoesNotCool: the address a failed dual-stack ADD took and
// gave back was never a pod's, so it does not cool down: a runtime's
// retries would otherwise take one more out of use each time.
func TestRollbackDoesNotCool(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	v4 := mkPool(t, "v4", "198.51.100.0/30", 26) // 2 usable
	v6 := mkPool(t, "v6", "2001:db8::/127", 122) // 2 usable
	a := &allocator.Allocator{Store: st, Node: "n", Cooldown: time.Hour}
	v6only := allocator.Request{ContainerID: "v6-a", IfName: "eth0", Wants: []allocator.Want{want(v6)}}
	for _, ctr := range []string{"v6-a", "v6-b"} {
		v6only.ContainerID = ctr
		if _, err := a.Assign(ctx, v6only); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ { // a runtime retrying
		_, err := a.Assign(ctx, allocator.Request{ContainerID: "dual", IfName: "eth0", Wants: []allocator.Want{want(v4), want(v6)}})
		if !errors.Is(err, allocator.ErrExhausted) || !strings.Contains(err.Error(), "IPv6") {
			t.Fatalf("dual-stack ADD %d with IPv6 full: %v", i, err)
		}
	}
	for _, b := range st.Blocks() {
		if b.Pool == "v4" && (len(b.Slots) != 0 || len(b.Released) != 0) {
			t.Fatalf("after the rolled-back ADDs the IPv4 block holds %v and cools %v", b.Slots, b.Released)
		}
	}
}
