package allocator

import "errors"

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
