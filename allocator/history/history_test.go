package history

import (
	"net/netip"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func rec(addr, ctr, from, to string) Record {
	r := Record{Address: netip.MustParseAddr(addr), ContainerID: ctr, IfName: "eth0", Namespace: "payments", Pod: "api-" + ctr, From: at(from)}
	if to != "" {
		r.To = at(to)
	}
	return r
}

func TestHeld(t *testing.T) {
	r := rec("198.51.100.7", "a", "2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z")
	open := rec("198.51.100.7", "b", "2026-11-28T11:00:05Z", "")
	for _, c := range []struct {
		r    Record
		t    string
		want bool
	}{
		{r, "2026-11-28T09:59:59Z", false},
		{r, "2026-11-28T10:00:00Z", true},
		{r, "2026-11-28T10:32:00Z", true},
		{r, "2026-11-28T11:00:00Z", true}, // the release's second still names it
		{r, "2026-11-28T11:00:01Z", false},
		{open, "2026-11-28T11:00:04Z", false},
		{open, "2030-01-01T00:00:00Z", true},
	} {
		if got := c.r.Held(at(c.t)); got != c.want {
			t.Errorf("%s held at %s: %v, want %v", c.r.ContainerID, c.t, got, c.want)
		}
	}
	// Sub-second times: the API server's are whole seconds.
	if !r.Held(at("2026-11-28T11:00:00Z").Add(900 * time.Millisecond)) {
		t.Error("a time within the release's second: not held")
	}
}

func TestShards(t *testing.T) {
	for _, c := range []struct{ addr, shard, label string }{
		{"198.51.100.7", "198.51.100.0/24", "c6336400-24"},
		{"198.51.100.255", "198.51.100.0/24", "c6336400-24"},
		{"::ffff:198.51.100.7", "198.51.100.0/24", "c6336400-24"},
		{"2001:db8::1c", "2001:db8::/120", "20010db8000000000000000000000000-120"},
		{"2001:db8::1:1c", "2001:db8::1:0/120", "20010db8000000000000000000010000-120"},
	} {
		s := ShardOf(netip.MustParseAddr(c.addr))
		if s.String() != c.shard || ShardLabel(s) != c.label {
			t.Errorf("%s: shard %s label %s, want %s %s", c.addr, s, ShardLabel(s), c.shard, c.label)
		}
	}
	s := ShardOf(netip.MustParseAddr("198.51.100.7"))
	if got := SegmentName(s, Day(at("2026-11-28T23:59:59-02:00")), 1); got != "h-c6336400-24-20261129-1" {
		t.Errorf("segment name %s (the day is UTC's)", got)
	}
}

func TestMergeAndLookup(t *testing.T) {
	a := rec("198.51.100.7", "a", "2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z")
	b := rec("198.51.100.7", "b", "2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z")
	c := rec("198.51.100.8", "c", "2026-11-28T09:00:00Z", "2026-11-28T10:30:00Z")
	have := []Record{b}
	if got := Unrecorded(have, []Record{a, b, a, c}); len(got) != 2 || got[0].ContainerID != "a" || got[1].ContainerID != "c" {
		t.Fatalf("unrecorded %+v, want a and c once each", got)
	}
	// The same container and address allocated again later is another record.
	again := rec("198.51.100.7", "b", "2026-11-28T13:00:00Z", "2026-11-28T14:00:00Z")
	if got := Unrecorded(have, []Record{again}); len(got) != 1 {
		t.Errorf("a later allocation of the same attachment was taken for a duplicate")
	}
	merged := Merge(have, []Record{a, c, b})
	var order []string
	for _, r := range merged {
		order = append(order, r.ContainerID)
	}
	if len(merged) != 3 || order[0] != "c" || order[1] != "a" || order[2] != "b" {
		t.Errorf("merged %v, want c a b (by release)", order)
	}
	addr := netip.MustParseAddr("198.51.100.7")
	for _, q := range []struct {
		t    string
		want []string
	}{
		{"2026-11-28T10:32:00Z", []string{"a"}},
		{"2026-11-28T11:00:00Z", []string{"a", "b"}}, // the handover second
		{"2026-11-28T12:30:00Z", nil},
		{"", []string{"a", "b"}},
	} {
		var tt time.Time
		if q.t != "" {
			tt = at(q.t)
		}
		var got []string
		for _, r := range Lookup(append(merged, b), addr, tt) {
			got = append(got, r.ContainerID)
		}
		if len(got) != len(q.want) || (len(got) > 0 && (got[0] != q.want[0] || got[len(got)-1] != q.want[len(q.want)-1])) {
			t.Errorf("lookup at %q: %v, want %v", q.t, got, q.want)
		}
	}
}

func TestExpired(t *testing.T) {
	now := at("2026-11-29T12:00:00Z")
	week := 7 * 24 * time.Hour
	for _, c := range []struct {
		day  string
		want bool
	}{
		{"20261121", true},  // ended 2026-11-22T00:00, before now-7d = 11-22T12:00
		{"20261122", false}, // holds releases after now-7d
		{"20261129", false},
		{"not-a-day", false},
	} {
		if got := Expired(c.day, now, week); got != c.want {
			t.Errorf("day %s: expired %v, want %v", c.day, got, c.want)
		}
	}
}
