package controller_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/history/archive"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// whoHad asks the history as kubectl poolguard who-had does.
func whoHad(t *testing.T, addr netip.Addr, at time.Time) []history.Record {
	t.Helper()
	recs, err := archive.WhoHad(context.Background(), kc, addr, at)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func claimObject(t *testing.T, id string) (*v1alpha1.IPAMClaim, error) {
	t.Helper()
	var o v1alpha1.IPAMClaim
	err := kc.Get(context.Background(), client.ObjectKey{Name: id}, &o)
	return &o, err
}

// TestHistoryLossless: an allocation released while the recorder is down
// waits for it (its claim held by the finalizer, the same attachment's ADD
// refused as busy meanwhile) and is recorded once it runs; who-had then
// names the pod for a time inside its tenure, after the pod and its claim
// are gone, and the next holder of the address for a later time.
func TestHistoryLossless(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "hist-pool", "198.18.210.0/28")
	st := kubestore.Store{Client: lean, History: true}
	a := &allocator.Allocator{Store: st, Node: "hist-node"}
	first := assign(t, a, p, "hist-a", allocator.PodRef{Namespace: "payments", Name: "api-0", UID: "uid-a"})
	if o, err := claimObject(t, first.ID); err != nil || !controllerutil.ContainsFinalizer(o, v1alpha1.FinalizerHistory) {
		t.Fatalf("the plugin's claim lacks the history finalizer: %v %v", o.Finalizers, err)
	}
	addr := first.Addresses[0].Addr
	time.Sleep(1100 * time.Millisecond) // a tenure of whole seconds
	during := time.Now()
	time.Sleep(1100 * time.Millisecond)
	if err := a.Release(ctx, "", "hist-a", "eth0"); err != nil {
		t.Fatal(err)
	}
	o, err := claimObject(t, first.ID)
	if err != nil || o.DeletionTimestamp == nil {
		t.Fatalf("with no recorder running the released claim must wait: %v %+v", err, o.ObjectMeta)
	}
	// The same attachment again, before the release is recorded: busy.
	_, err = a.Assign(ctx, allocator.Request{ContainerID: "hist-a", IfName: "eth0", Pod: first.Pod, Wants: []allocator.Want{{Ranges: []allocator.Range{p}}}})
	if !errors.Is(err, allocator.ErrReleasing) {
		t.Fatalf("ADD of an attachment whose release is not recorded yet: %v, want ErrReleasing", err)
	}
	// Already answerable: the unrecorded release counts from its deletion.
	if got := whoHad(t, addr, during); len(got) != 1 || got[0].Pod != "api-0" || got[0].Open() {
		t.Fatalf("before recording: who had %s at %s: %+v", addr, during, got)
	}

	startManager(t, controller.Options{GracePeriod: time.Hour, Interval: time.Hour})
	eventually(t, "released claim recorded and gone", func() (bool, string) {
		_, err := claimObject(t, first.ID)
		return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprint(err)
	})
	var segs v1alpha1.IPAMHistoryList
	if err := kc.List(ctx, &segs, client.MatchingLabels{v1alpha1.LabelHistoryShard: history.ShardLabel(history.ShardOf(addr))}); err != nil || len(segs.Items) != 1 || segs.Items[0].Spec.Count != 1 {
		t.Fatalf("segments of %s: %v %+v", addr, err, segs.Items)
	}
	got := whoHad(t, addr, during)
	if len(got) != 1 {
		t.Fatalf("who had %s at %s: %+v", addr, during, got)
	}
	r := got[0]
	if r.Namespace != "payments" || r.Pod != "api-0" || r.PodUID != "uid-a" || r.Node != "hist-node" || r.ContainerID != "hist-a" || r.IfName != "eth0" || r.Pool != "hist-pool" || r.Open() || !r.From.Before(during) || r.To.Before(during) {
		t.Errorf("record %+v", r)
	}

	// The address goes to the next pod (this pool reuses it once the
	// others are taken): who-had tells the two apart by time.
	var next *allocator.Claim
	for i := 0; next == nil && i < 14; i++ {
		c := assign(t, a, p, fmt.Sprint("hist-fill-", i), allocator.PodRef{Namespace: "web", Name: fmt.Sprint("fill-", i), UID: fmt.Sprint("uid-fill-", i)})
		if c.Addresses[0].Addr == addr {
			next = c
		}
	}
	if next == nil {
		t.Fatalf("%s was never handed out again", addr)
	}
	// (A second after the handover: with cooldown off, the handover's
	// second itself names both.)
	if got := whoHad(t, addr, time.Now().Add(2*time.Second)); len(got) != 1 || got[0].Pod != next.Pod.Name || !got[0].Open() {
		t.Errorf("who holds %s now: %+v, want %s, open", addr, got, next.Pod)
	}
	if got := whoHad(t, addr, during); len(got) != 1 || got[0].Pod != "api-0" {
		t.Errorf("who had %s at %s, after the reuse: %+v", addr, during, got)
	}
	if got := whoHad(t, addr, time.Time{}); len(got) != 2 {
		t.Errorf("every holder of %s: %+v, want api-0 then %s", addr, got, next.Pod)
	}
	if got := whoHad(t, netip.MustParseAddr("198.18.210.200"), time.Time{}); len(got) != 0 {
		t.Errorf("an address never handed out: %+v", got)
	}
}

// TestHistoryOfCollectedAndOlderClaims: the garbage collector's releases
// are recorded too, and a claim made without the finalizer (before the
// history was turned on) is marked by the recorder and recorded on release.
func TestHistoryOfCollectedAndOlderClaims(t *testing.T) {
	ctx := context.Background()
	p := mkPool(t, "hist-gc-pool", "198.18.211.0/28")
	older := &allocator.Allocator{Store: kubestore.Store{Client: lean}, Node: "hist-gc-node"}
	pre := assign(t, older, p, "hist-pre", allocator.PodRef{Namespace: "web", Name: "pre", UID: "uid-pre"})
	a := &allocator.Allocator{Store: kubestore.Store{Client: lean, History: true}, Node: "hist-gc-node"}
	orphan := assign(t, a, p, "hist-orphan", allocator.PodRef{Namespace: "web", Name: "orphan", UID: "uid-orphan"}) // no such pod
	live := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hist-live"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if err := kc.Create(ctx, live); err != nil {
		t.Fatal(err)
	}
	pre.Pod = allocator.PodRef{Namespace: "default", Name: "hist-live", UID: string(live.UID)}
	// pre's pod is "web/pre", which does not exist either: keep it out of
	// the collector's way by giving it a live pod.
	if err := older.ReleaseClaim(ctx, pre); err != nil {
		t.Fatal(err)
	}
	pre = assign(t, older, p, "hist-pre", allocator.PodRef{Namespace: "default", Name: "hist-live", UID: string(live.UID)})

	startManager(t, controller.Options{GracePeriod: time.Nanosecond, Interval: 200 * time.Millisecond})
	eventually(t, "the older claim marked", func() (bool, string) {
		o, err := claimObject(t, pre.ID)
		return err == nil && controllerutil.ContainsFinalizer(o, v1alpha1.FinalizerHistory), fmt.Sprint(err)
	})
	eventually(t, "the collected claim recorded and gone", func() (bool, string) {
		_, err := claimObject(t, orphan.ID)
		return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprint(err)
	})
	if got := whoHad(t, orphan.Addresses[0].Addr, time.Time{}); len(got) != 1 || got[0].Open() || got[0].Pod != "orphan" {
		t.Errorf("the collected claim's record: %+v", got)
	}
	if err := older.ReleaseClaim(ctx, pre); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the older claim's release recorded", func() (bool, string) {
		got := whoHad(t, pre.Addresses[0].Addr, time.Time{})
		return len(got) == 1 && !got[0].Open() && got[0].Pod == "hist-live", fmt.Sprintf("%+v", got)
	})
}

// TestHistoryRetention: whole days older than the retention window are
// deleted, newer ones kept; appending a record twice (a recorder that
// crashed before letting its claim go) writes it once.
func TestHistoryRetention(t *testing.T) {
	ctx := context.Background()
	ar := archive.Archive{Client: kc, Live: kc}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	mk := func(addr string, daysAgo int) history.Record {
		to := now.Add(-time.Duration(daysAgo) * 24 * time.Hour)
		return history.Record{Address: netip.MustParseAddr(addr), Pool: "p", Namespace: "n", Pod: fmt.Sprint("pod-", daysAgo), Node: "x", ContainerID: fmt.Sprint("c", daysAgo), IfName: "eth0", From: to.Add(-time.Hour), To: to}
	}
	recs := []history.Record{mk("198.18.212.9", 10), mk("198.18.212.9", 8), mk("198.18.212.9", 6), mk("198.18.212.9", 0), mk("2001:db8::9", 9)}
	if err := ar.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if err := ar.Append(ctx, recs[3:4]); err != nil {
		t.Fatal(err)
	}
	if got := whoHad(t, netip.MustParseAddr("198.18.212.9"), time.Time{}); len(got) != 4 {
		t.Fatalf("before expiry: %d records, want 4", len(got))
	}
	// The record appended twice is stored once (who-had would hide a
	// duplicate: count what the segment holds).
	var today v1alpha1.IPAMHistory
	if err := kc.Get(ctx, client.ObjectKey{Name: history.SegmentName(history.ShardOf(recs[3].Address), history.Day(recs[3].To), 0)}, &today); err != nil || today.Spec.Count != 1 {
		t.Fatalf("today's segment after appending its record twice: %v, count %d, want 1", err, today.Spec.Count)
	}
	e := &controller.Expirer{Archive: ar, Retention: 7 * 24 * time.Hour, Log: testr.New(t), Now: func() time.Time { return now }}
	n, err := e.Expire(ctx)
	if err != nil || n != 3 {
		t.Fatalf("expired %d segments (%v), want 3: the days 10, 9 and 8 days ago", n, err)
	}
	got := whoHad(t, netip.MustParseAddr("198.18.212.9"), time.Time{})
	if len(got) != 2 || got[0].Pod != "pod-6" || got[1].Pod != "pod-0" {
		t.Errorf("after expiry: %+v, want the records of 6 days ago and today", got)
	}
	if got := whoHad(t, netip.MustParseAddr("2001:db8::9"), time.Time{}); len(got) != 0 {
		t.Errorf("IPv6 record of 9 days ago kept: %+v", got)
	}
}

// TestHistorySegmentsRollOver: a busy shard's day fills segment after
// segment, none past MaxSegmentBytes, every record kept once, each append
// reading only the last segment.
func TestHistorySegmentsRollOver(t *testing.T) {
	ctx := context.Background()
	ar := archive.Archive{Client: kc, Live: kc}
	to := time.Now().UTC().Truncate(time.Second)
	const n = 5000
	var recs []history.Record
	for i := range n {
		// Container IDs and UIDs are random, as in life: they do not
		// compress, so the day outgrows one segment.
		recs = append(recs, history.Record{Address: netip.AddrFrom4([4]byte{198, 18, 213, byte(i)}), Pool: "busy", Namespace: "churn",
			Pod: fmt.Sprintf("job-%d", i), PodUID: rand.Text(), Node: fmt.Sprint("node-", i%50),
			ContainerID: rand.Text() + rand.Text(), IfName: "eth0", From: to.Add(-time.Duration(i) * time.Second), To: to})
	}
	for chunk := range slices.Chunk(recs, 500) {
		if err := ar.Append(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := ar.Append(ctx, recs[n-3:]); err != nil { // the last write, retried
		t.Fatal(err)
	}
	var segs v1alpha1.IPAMHistoryList
	if err := kc.List(ctx, &segs, client.MatchingLabels{v1alpha1.LabelHistoryShard: history.ShardLabel(history.ShardOf(recs[0].Address))}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range segs.Items {
		if len(s.Spec.Records) > archive.MaxSegmentBytes {
			t.Errorf("segment %s holds %d bytes, over %d", s.Name, len(s.Spec.Records), archive.MaxSegmentBytes)
		}
		total += int(s.Spec.Count)
	}
	if len(segs.Items) < 2 || total != n {
		t.Errorf("%d segments holding %d records, want several holding %d", len(segs.Items), total, n)
	}
}
