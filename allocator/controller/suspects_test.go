package controller

import (
	"testing"
	"time"
)

// TestSuspects: a candidate is due once it has looked like garbage for the
// whole grace period, counted from the first time it did, across sweeps;
// one a sweep no longer sees as garbage is forgotten when the sweep ends
// (and waits a whole grace period again if it comes back), unless the pod
// controller saw it during that sweep; a due or forgotten candidate starts
// over.
func TestSuspects(t *testing.T) {
	const grace = 5 * time.Minute
	t0 := time.Date(2026, 11, 29, 14, 0, 0, 0, time.UTC)
	claim := candidate{kind: candidateClaim, name: "c-1", ref: "uid-1"}
	slot := candidate{kind: candidateSlot, name: "198-18-0-0-26", ref: "c-2", slot: 3, seq: 7}
	var s suspects

	// Sweep 1 sees both.
	r := s.begin()
	if left := s.wait(claim, t0, grace); left != grace {
		t.Fatalf("first sight: %s left, want %s", left, grace)
	}
	if s.due(slot, t0, grace) {
		t.Fatal("a slot seen once is due")
	}
	if n := s.end(r); n != 2 {
		t.Fatalf("after sweep 1: %d suspects, want 2", n)
	}
	// Sweep 2, 3 minutes later: the claim again, the slot no longer.
	r = s.begin()
	if left := s.wait(claim, t0.Add(3*time.Minute), grace); left != 2*time.Minute {
		t.Fatalf("claim seen again after 3m: %s left, want 2m", left)
	}
	if n := s.end(r); n != 1 {
		t.Fatalf("after sweep 2: %d suspects, want the claim only", n)
	}
	// The slot comes back: it starts over.
	r = s.begin()
	if s.due(slot, t0.Add(6*time.Minute), grace) {
		t.Fatal("a slot forgotten by sweep 2 is due on its return: its grace period must start over")
	}
	// The claim, 5 minutes after its first sight: due, and forgotten.
	if !s.due(claim, t0.Add(5*time.Minute), grace) {
		t.Fatal("the claim is not due after the grace period")
	}
	if n := s.end(r); n != 1 {
		t.Fatalf("after sweep 3: %d suspects, want the slot only (the due claim forgotten)", n)
	}
	if left := s.wait(claim, t0.Add(6*time.Minute), grace); left != grace {
		t.Fatalf("a due claim seen again (its release failed or found it alive): %s left, want a whole grace period", left)
	}

	// Between sweeps the pod controller sees another claim; the next
	// sweep does not (its listing was older): it survives that sweep only
	// if the controller saw it during it.
	other := candidate{kind: candidateClaim, name: "c-3", ref: "uid-3"}
	s.wait(other, t0.Add(7*time.Minute), grace)
	r = s.begin()
	s.wait(slot, t0.Add(8*time.Minute), grace)
	s.wait(claim, t0.Add(8*time.Minute), grace)
	s.end(r)
	if _, kept := s.since[other]; kept {
		t.Error("a candidate seen before the sweep began, and not by it, outlived it")
	}
	r = s.begin()
	s.wait(other, t0.Add(9*time.Minute), grace) // the controller, during the sweep
	s.wait(slot, t0.Add(9*time.Minute), grace)
	s.end(r)
	if _, kept := s.since[other]; !kept {
		t.Error("a candidate the pod controller saw during the sweep was forgotten by it")
	}
	// (The claim, not seen by that sweep, is gone too.)
	s.forget(other)
	if _, kept := s.since[other]; kept || s.len() != 1 {
		t.Errorf("forget: %d suspects, want 1 (the slot)", s.len())
	}

	// Zero grace: due at once, nothing kept.
	var z suspects
	if !z.due(claim, t0, 0) || z.len() != 0 {
		t.Errorf("with no grace period: not due at once, or kept (%d)", z.len())
	}
}
