package allocator

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. The store and the engine wrap them with detail; only the
// CNI edge maps them to CNI error codes.
var (
	// ErrExhausted: no free address in the pools that were tried.
	ErrExhausted = errors.New("pool exhausted")

	// ErrNotFound: the store has no such object.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create lost to an object of the same name; for a block
	// this means another node claimed it first.
	ErrExists = errors.New("already exists")
	// ErrConflict: a write raced another (optimistic concurrency).
	ErrConflict = errors.New("write conflict")
	// ErrBusy: too many write conflicts in a row; retrying later helps.
	ErrBusy = errors.New("too much contention")
	// ErrReleasing: the attachment's previous claim is released but not
	// gone yet (the store keeps it until the history has recorded it);
	// retrying in a few seconds helps.
	ErrReleasing = errors.New("previous allocation still being released")
	// ErrUnavailable: the store (the API server) cannot be reached.
	ErrUnavailable = errors.New("state store unavailable")
	// ErrRefused: the store refused the caller's credential, as expired
	// or revoked (401) or not allowed to do this (403: RBAC, or the
	// chart's policy that keeps a node to its own allocations).
	ErrRefused = errors.New("credential refused by the state store")
	// ErrInvalidState: an object read from the store breaks the
	// allocator's invariants (hand-edited, or written by a buggy or
	// hostile client): nothing is decided on it.
	ErrInvalidState = errors.New("invalid allocation state")
	// ErrMismatch: CHECK found the recorded allocation differs from what
	// the runtime believes.
	ErrMismatch = errors.New("allocation mismatch")
)

// CoolingError is an ErrExhausted (errors.Is holds) of a block that would
// have room but for addresses released less than a cooldown ago. Assign's
// exhaustion error carries the same detail summed per pool, as text.
type CoolingError struct {
	// What is full: "block 198.51.100.0/28 of pool \"p\" is full".
	What string
	// Cooling says how many addresses cool down, and until when.
	Cooling CoolingSummary
}

func (e *CoolingError) Error() string {
	return ErrExhausted.Error() + ": " + e.What + ": " + e.Cooling.String()
}

// Unwrap makes errors.Is(err, ErrExhausted) hold.
func (e *CoolingError) Unwrap() error { return ErrExhausted }

// CoolingSummary counts the addresses of a block or pool that are cooling
// down after release.
type CoolingSummary struct {
	// Count is how many addresses are cooling down.
	Count int
	// First is when the first of them is free again.
	First time.Time
	// Period is the cooldown.
	Period time.Duration
}

// Add merges another block's summary into s.
func (s *CoolingSummary) Add(o CoolingSummary) {
	if o.Count == 0 {
		return
	}
	if s.Count == 0 || o.First.Before(s.First) {
		s.First = o.First
	}
	s.Count += o.Count
	s.Period = o.Period
}

// String says it as the exhaustion error does: how many, the cooldown (the
// CNI plugin's ipam.cooldown) and when the first is free again (UTC).
func (s CoolingSummary) String() string {
	addrs := "addresses"
	if s.Count == 1 {
		addrs = "address"
	}
	return fmt.Sprintf("%d %s cooling down after release (ipam.cooldown %s), the first free again at %s",
		s.Count, addrs, s.Period, s.First.UTC().Format(time.RFC3339))
}
