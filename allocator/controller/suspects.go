package controller

import (
	"sync"
	"time"
)

// candidateKind says what a candidate for collection is.
type candidateKind uint8

const (
	// candidateClaim is a claim whose pod is gone.
	candidateClaim candidateKind = iota + 1
	// candidateSlot is a slot no claim records.
	candidateSlot
	// candidateBlock is an empty block of a deleted node.
	candidateBlock
)

// candidate identifies something that looks like garbage, precisely
// enough that a replacement is a new candidate: a claim by name and UID,
// a slot by block, offset, claim and sequence number, a block by name and
// resourceVersion. A comparable struct, so that keeping and finding it
// builds no string; its strings are those of the objects it was read
// from.
type candidate struct {
	kind candidateKind
	// name is the claim's or the block's name.
	name string
	// ref is a claim's UID, the claim a slot names, or a block's
	// resourceVersion.
	ref string
	// slot and seq are a slot's offset and sequence number.
	slot int32
	seq  int64
}

// suspicion is when a candidate was first and last seen as garbage.
type suspicion struct {
	first time.Time
	// round is the sweep round it was last seen in (suspects.round).
	round uint64
}

// suspects remembers since when each candidate has looked like garbage,
// across sweeps and between them (the pod controller adds the claims of
// deleted pods). A candidate is freed only once it has looked like garbage
// for the whole grace period; one that stops looking like garbage is
// forgotten, so it starts over if it looks like garbage again.
type suspects struct {
	mu    sync.Mutex
	since map[candidate]suspicion
	// round counts sweeps: a sweep forgets, when it ends, what neither
	// it nor the pod controller saw as garbage since it began.
	round uint64
}

// wait records that c looks like garbage at now and returns how much of
// the grace period it still has to wait; zero means it is due, and it is
// forgotten (a release that fails or finds it alive starts over).
func (s *suspects) wait(c candidate, now time.Time, grace time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since == nil {
		s.since = map[candidate]suspicion{}
	}
	sp, seen := s.since[c]
	if !seen {
		sp.first = now
	}
	if left := grace - now.Sub(sp.first); left > 0 {
		sp.round = s.round
		s.since[c] = sp
		return left
	}
	delete(s.since, c)
	return 0
}

// due reports whether c has looked like garbage for the grace period.
func (s *suspects) due(c candidate, now time.Time, grace time.Duration) bool {
	return s.wait(c, now, grace) == 0
}

// forget drops c: it does not look like garbage now.
func (s *suspects) forget(c candidate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.since, c)
}

// begin starts a sweep's round and returns it.
func (s *suspects) begin() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.round++
	return s.round
}

// end closes round: candidates not seen as garbage since it began are no
// longer suspects. It returns how many are.
func (s *suspects) end(round uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, sp := range s.since {
		if sp.round < round {
			delete(s.since, c)
		}
	}
	return len(s.since)
}

// len returns how many candidates are waiting for the grace period.
func (s *suspects) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.since)
}
