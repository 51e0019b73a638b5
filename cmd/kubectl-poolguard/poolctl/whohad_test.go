package poolctl_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/history/archive"
	"poolguard.dev/poolguard/allocator/kubestore"
	storev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
)

// TestWhoHad: who-had against a real history and a live claim: the pod of
// a time yesterday, every holder without --at, nobody (exit 1) outside,
// and errors that say what to do (exit 2).
func TestWhoHad(t *testing.T) {
	kc := setUp(t)
	ctx := context.Background()
	c := storeClient(t)
	addr := netip.MustParseAddr("198.18.99.7")
	yesterday := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Hour)
	past := []history.Record{
		{Address: addr, Pool: "general", Namespace: "payments", Pod: "api-0", PodUID: "uid-api-0", Node: "node-a", ContainerID: "0123456789abcdef0123", IfName: "eth0", From: yesterday, To: yesterday.Add(time.Hour)},
		{Address: netip.MustParseAddr("198.18.99.8"), Pool: "general", Namespace: "web", Pod: "other", Node: "node-a", ContainerID: "c-other", IfName: "eth0", From: yesterday, To: yesterday.Add(time.Hour)},
	}
	if err := (archive.Archive{Client: c, Live: c}).Append(ctx, past); err != nil {
		t.Fatal(err)
	}
	claim := &storev1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "whohad-live"},
		Spec: storev1alpha1.IPAMClaimSpec{ContainerID: "c-now", IfName: "eth0", Node: "node-b", Pod: storev1alpha1.PodReference{Namespace: "web", Name: "now-0", UID: "uid-now"},
			Addresses: []storev1alpha1.ClaimAddress{{Pool: "general", PoolCIDR: "198.18.99.0/24", Block: "198.18.99.0/26", Address: addr.String(), Seq: 3}}},
	}
	claim.Labels = kubestore.ClaimShardLabels(claim)
	if err := c.Create(ctx, claim); err != nil {
		t.Fatal(err)
	}

	at := yesterday.Add(32 * time.Minute).Format(time.RFC3339)
	code, out, _ := run(t, kc, "", "who-had", addr.String(), "--at", at)
	if code != poolctl.ExitOK {
		t.Errorf("who-had at %s: exit %d, want 0", at, code)
	}
	row(t, out, addr.String(), "payments", "api-0", "uid-api-0", "node-a", "0123456789abc", "eth0", "general")
	code, out, _ = run(t, kc, "", "who-had", addr.String(), "-o", "json")
	r := decode[poolctl.WhoHadReport](t, out)
	if code != poolctl.ExitOK || len(r.Holders) != 2 || r.Holders[0].Pod != "api-0" || r.Holders[1].Pod != "now-0" || !r.Holders[1].Open() || r.At != nil {
		t.Errorf("every holder: exit %d, %+v", code, r)
	}
	code, out, _ = run(t, kc, "", "who-had", addr.String(), "--at", yesterday.Add(-time.Hour).Format(time.RFC3339))
	if code != poolctl.ExitFound {
		t.Errorf("before anyone held it: exit %d, want 1", code)
	}
	contains(t, "nobody", out, "No pod held 198.18.99.7 at ")
	for _, args := range [][]string{{"who-had", "198.18.99.300"}, {"who-had", addr.String(), "--at", "yesterday-ish"}, {"who-had"}} {
		if code, _, _ := run(t, kc, "", args...); code != poolctl.ExitError {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	loc := time.FixedZone("CET", 3600)
	for in, want := range map[string]time.Time{
		"2026-11-28T10:32:00Z":      time.Date(2026, 11, 28, 10, 32, 0, 0, time.UTC),
		"2026-11-28T10:32:00+01:00": time.Date(2026, 11, 28, 9, 32, 0, 0, time.UTC),
		"2026-11-28 10:32":          time.Date(2026, 11, 28, 9, 32, 0, 0, time.UTC),
		"2026-11-28 10:32:05":       time.Date(2026, 11, 28, 9, 32, 5, 0, time.UTC),
		"90m":                       now.Add(-90 * time.Minute),
		"-2h":                       now.Add(-2 * time.Hour),
	} {
		got, err := poolctl.ParseTime(in, now, loc)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "28/11/2026 10:32", "1.5"} {
		if _, err := poolctl.ParseTime(in, now, loc); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}
