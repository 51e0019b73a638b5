package allocator

import (
	"context"
	"time"
)

// Allocator hands out and releases addresses for one node. It holds no
// state between calls: everything lives in the Store, so any number of
// plugin processes may run it at once.
type Allocator struct {
	Store Store
	// Node is the node this allocator works for.
	Node string
	// MaxConflicts bounds retries after ErrConflict; 0 means
	// DefaultMaxConflicts.
	MaxConflicts int
	// Serialize, when set, is held around each read-modify-write of a
	// block, allocating or releasing. The CNI plugin passes a node-local
	// file lock, so that the plugin processes of one node queue for their
	// block instead of racing for it: a lost race costs the API server a
	// read and a write for nothing. Correctness never depends on it: every
	// write is still guarded by resourceVersion, and other nodes do not
	// take the lock.
	Serialize func(ctx context.Context) (unlock func(), err error)
	// Cooldown is how long an address released through this allocator,
	// or by another, stays out of use before Assign hands it out again,
	// so that a firewall's connection state and logs for it cannot be
	// mistaken for the next pod's. Zero (the zero value) hands it out
	// again at once, the cursor still making it its block's last choice.
	// The CNI plugin sets it from ipam.cooldown (default 5m). Releases are
	// recorded whatever it is.
	Cooldown time.Duration
	// Now is the clock releases are recorded and cooldowns measured by;
	// nil means time.Now.
	Now func() time.Time
}

// Request asks for one address per Want for a CNI attachment.
type Request struct {
	Network     string
	ContainerID string
	IfName      string
	Pod         PodRef
	Wants       []Want
	// SkipClaimRead skips the lookup of an existing claim. Assign stays
	// idempotent without it: a slot the attachment already holds in a
	// block is reused, and an existing claim makes the claim's create
	// fail, upon which Assign returns that claim and frees what it took.
	// A repeated ADD then costs more; every first ADD one read less.
	SkipClaimRead bool
	// Affinity, when set, is the node's affinity the caller has just read
	// (in parallel with its other reads), so Assign skips that read.
	Affinity *Affinity
}

// Want is one address the attachment needs: the ranges it may come from,
// in order of preference, all of one family.
type Want struct {
	Ranges []Range
}

// family names the want's address family, for messages.
func (w Want) family() string {
	if len(w.Ranges) > 0 && !w.Ranges[0].CIDR.Addr().Is4() {
		return "IPv6"
	}
	return "IPv4"
}

// Get returns the attachment's claim, or ErrNotFound.
func (a *Allocator) Get(ctx context.Context, network, containerID, ifName string) (*Claim, error) {
	return a.Store.GetClaim(ctx, ClaimID(network, containerID, ifName))
}

// lock takes Serialize, if any.
func (a *Allocator) lock(ctx context.Context) (func(), error) {
	if a.Serialize == nil {
		return func() {}, nil
	}
	return a.Serialize(ctx)
}

func (a *Allocator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// cooldown is the clock and cooldown of one block change.
func (a *Allocator) cooldown() Cooldown {
	return Cooldown{Now: a.now(), Period: a.Cooldown}
}
