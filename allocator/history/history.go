// Package history is the attribution history's logic: which pod held an
// address, and when. It is pure (no I/O, no Kubernetes): records, the
// shards and segments they are filed in, merging and the query. Package
// history/archive keeps segments in the Kubernetes API; the allocator's
// recorder (allocator/controller) fills them as claims are released.
//
// A record is written once, when its claim is released, into the segment
// of its address's shard (a /24, or a /120 for IPv6: 256 addresses) for
// the UTC day of the release. Who held an address is then answered from
// the segments of one shard only, however large the cluster, and the
// retention window is kept by deleting whole days.
package history

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Record says that one CNI attachment held an address from From to To.
type Record struct {
	Address     netip.Addr `json:"address"`
	Pool        string     `json:"pool"`
	Namespace   string     `json:"namespace"`
	Pod         string     `json:"pod"`
	PodUID      string     `json:"podUID,omitempty"`
	Node        string     `json:"node"`
	ContainerID string     `json:"containerID"`
	IfName      string     `json:"ifName"`
	// From is when the address was handed out (the claim's creation).
	From time.Time `json:"allocatedAt"`
	// To is when it was released (the claim's deletion); zero while the
	// attachment still holds it.
	To time.Time `json:"releasedAt,omitzero"`
}

// Held reports whether the record's attachment held the address at t. The
// API server keeps creation and deletion times to the second, so both
// ends are inclusive: a firewall log line of the release's second still
// names this pod (and, with cooldown off, possibly the next one too).
func (r Record) Held(t time.Time) bool {
	t = t.Truncate(time.Second)
	return !t.Before(r.From.Truncate(time.Second)) && (r.To.IsZero() || !t.After(r.To))
}

// Open reports whether the address is still held.
func (r Record) Open() bool { return r.To.IsZero() }

// same reports whether two records are one allocation (written twice by a
// recorder that crashed between writing it and releasing its claim).
func (r Record) same(o Record) bool {
	return r.Address == o.Address && r.ContainerID == o.ContainerID && r.IfName == o.IfName && r.From.Equal(o.From)
}

// Shard sizes: the addresses whose records share segments.
const (
	ShardBits4 = 24
	ShardBits6 = 120
)

// ShardOf returns the shard of an address.
func ShardOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := ShardBits6
	if a.Is4() {
		bits = ShardBits4
	}
	p, _ := a.Prefix(bits)
	return p
}

// ShardLabel renders a shard as a label value (hex address, "-", length),
// for finding its segments with a label selector.
func ShardLabel(shard netip.Prefix) string {
	return hex.EncodeToString(shard.Addr().AsSlice()) + "-" + strconv.Itoa(shard.Bits())
}

// Day returns the UTC day of t as YYYYMMDD, the unit of retention.
func Day(t time.Time) string { return t.UTC().Format("20060102") }

// SegmentName names the n-th segment of a shard's day. Names are
// deterministic, so a recorder finds the segment to append to by name.
func SegmentName(shard netip.Prefix, day string, n int) string {
	return fmt.Sprintf("h-%s-%s-%d", ShardLabel(shard), day, n)
}

// Unrecorded returns the records of add that have does not hold, each
// once.
func Unrecorded(have, add []Record) []Record {
	var out []Record
	for _, r := range add {
		if !slices.ContainsFunc(have, r.same) && !slices.ContainsFunc(out, r.same) {
			out = append(out, r)
		}
	}
	return out
}

// Merge adds records to a segment's, skipping those already there, and
// returns the result ordered by release.
func Merge(have, add []Record) []Record {
	out := append(slices.Clone(have), Unrecorded(have, add)...)
	slices.SortStableFunc(out, func(a, b Record) int { return a.To.Compare(b.To) })
	return out
}

// Lookup returns the records of addr held at t (every record of addr when
// t is zero), oldest first.
func Lookup(recs []Record, addr netip.Addr, t time.Time) []Record {
	var out []Record
	for _, r := range recs {
		if r.Address == addr && (t.IsZero() || r.Held(t)) && !slices.ContainsFunc(out, r.same) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := a.From.Compare(b.From); c != 0 {
			return c
		}
		return cmp.Compare(a.ContainerID, b.ContainerID)
	})
	return out
}

// Expired reports whether a day's segments may be deleted: every release
// they hold is older than the retention window. Records are kept for at
// least the window and at most one day more.
func Expired(day string, now time.Time, retention time.Duration) bool {
	d, err := time.Parse("20060102", day)
	if err != nil {
		return false // not a day this package wrote: leave it to people
	}
	return !d.Add(24 * time.Hour).After(now.Add(-retention))
}
