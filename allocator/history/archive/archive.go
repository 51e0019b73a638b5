// Package archive keeps the attribution history in the Kubernetes API, as
// IPAMHistory segments (see package history for their layout), and answers
// who held an address from them and from the live claims.
//
// Only the allocator's recorder appends, on the elected leader; readers
// need list on ipamhistories and ipamclaims.
package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// Limits of a segment.
const (
	// MaxSegmentBytes bounds a segment's compressed records: a segment
	// object stays under 350 KiB (base64 included), far from etcd's
	// 1.5 MiB limit, and each append rewrites at most that much.
	MaxSegmentBytes = 256 << 10
	// maxDecoded bounds what one segment may expand to when read, so a
	// corrupted or hostile object cannot exhaust a reader's memory.
	maxDecoded = 64 << 20
	// appendAttempts bounds the retries of an append that lost a race.
	appendAttempts = 10
	// appendBatch bounds the records one write adds, so that a new
	// segment always starts under MaxSegmentBytes (a record compresses
	// to about 130 bytes and is never larger than a few KiB).
	appendBatch = 64
)

// ErrCorrupt: a segment's records cannot be read.
var ErrCorrupt = errors.New("history segment unreadable")

// Encode compresses records for a segment.
func Encode(recs []history.Record) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(zw).Encode(recs); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode reads a segment's records.
func Decode(data []byte) ([]history.Record, error) {
	if len(data) == 0 {
		return nil, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if len(raw) > maxDecoded {
		return nil, fmt.Errorf("%w: expands past %d MiB", ErrCorrupt, maxDecoded>>20)
	}
	var recs []history.Record
	if err := json.Unmarshal(raw, &recs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return recs, nil
}

// RecordsOf returns a claim's records: one per address, allocated at the
// claim's creation, released at its deletion (zero while it is live).
func RecordsOf(c *v1alpha1.IPAMClaim) []history.Record {
	var to time.Time
	if c.DeletionTimestamp != nil {
		to = c.DeletionTimestamp.UTC()
	}
	out := make([]history.Record, 0, len(c.Spec.Addresses))
	for _, a := range c.Spec.Addresses {
		addr, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue // the API server's validation makes this unreachable
		}
		out = append(out, history.Record{
			Address: addr, Pool: a.Pool, Namespace: c.Spec.Pod.Namespace, Pod: c.Spec.Pod.Name, PodUID: c.Spec.Pod.UID,
			Node: c.Spec.Node, ContainerID: c.Spec.ContainerID, IfName: c.Spec.IfName,
			From: c.CreationTimestamp.UTC(), To: to,
		})
	}
	return out
}

// Archive reads and writes segments.
type Archive struct {
	// Client writes segments and lists them.
	Client client.Client
	// Live reads a segment before appending to it, from the API server
	// itself (no cache), so an append never works on a stale copy.
	Live client.Reader
}

// Append files released records into their segments, each once: a record
// already there (written before a crash) is not written again.
func (a Archive) Append(ctx context.Context, recs []history.Record) error {
	type key struct {
		shard netip.Prefix
		day   string
	}
	groups := map[key][]history.Record{}
	var order []key
	for _, r := range recs {
		if r.Open() {
			return fmt.Errorf("history: record of %s for %s/%s has no release time", r.Address, r.Namespace, r.Pod)
		}
		k := key{history.ShardOf(r.Address), history.Day(r.To)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		for batch := range slices.Chunk(groups[k], appendBatch) {
			var err error
			for range appendAttempts {
				if err = a.appendOnce(ctx, k.shard, k.day, batch); !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
					break
				}
			}
			if err != nil {
				return fmt.Errorf("history segment of %s on %s: %w", k.shard, k.day, err)
			}
		}
	}
	return nil
}

// appendOnce finds the last segment of a shard's day (one metadata list by
// labels), drops the records it already holds and writes the rest into it,
// or into a new segment when it would grow past MaxSegmentBytes or cannot
// be read. Only the last segment is checked for duplicates: a record is
// written again only by a recorder that crashed after writing it, which
// retries at once, while that segment is still the last; Lookup drops the
// rare duplicate anyway. So an append costs the same at any hour of the
// busiest shard's day.
func (a Archive) appendOnce(ctx context.Context, shard netip.Prefix, day string, recs []history.Record) error {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("IPAMHistoryList"))
	if err := a.Live.List(ctx, &list, client.MatchingLabels{v1alpha1.LabelHistoryShard: history.ShardLabel(shard), v1alpha1.LabelHistoryDay: day}); err != nil {
		return err
	}
	next := 0
	for _, m := range list.Items {
		if n, ok := segmentNumber(m.Name, shard, day); ok && n >= next {
			next = n + 1
		}
	}
	fresh := history.Unrecorded(nil, recs)
	if next > 0 {
		var last v1alpha1.IPAMHistory
		err := a.Live.Get(ctx, client.ObjectKey{Name: history.SegmentName(shard, day, next-1)}, &last)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		have, derr := Decode(last.Spec.Records)
		if err == nil && derr == nil {
			if fresh = history.Unrecorded(have, recs); len(fresh) == 0 {
				return nil
			}
			merged := history.Merge(have, fresh)
			data, err := Encode(merged)
			if err != nil {
				return err
			}
			if len(data) <= MaxSegmentBytes {
				last.Spec.Records, last.Spec.Count = data, int32(len(merged))
				return a.Client.Update(ctx, &last)
			}
		}
		// Full, gone (expired meanwhile) or unreadable (left as it is
		// for people to look at): the records go into a new segment.
	}
	data, err := Encode(fresh)
	if err != nil {
		return err
	}
	o := &v1alpha1.IPAMHistory{
		ObjectMeta: metav1.ObjectMeta{
			Name:   history.SegmentName(shard, day, next),
			Labels: map[string]string{v1alpha1.LabelHistoryShard: history.ShardLabel(shard), v1alpha1.LabelHistoryDay: day},
		},
		Spec: v1alpha1.IPAMHistorySpec{Shard: shard.String(), Day: day, Count: int32(len(fresh)), Records: data},
	}
	return a.Client.Create(ctx, o)
}

// segmentNumber returns n of a segment named SegmentName(shard, day, n).
func segmentNumber(name string, shard netip.Prefix, day string) (int, bool) {
	prefix := strings.TrimSuffix(history.SegmentName(shard, day, 0), "0")
	n, err := strconv.Atoi(strings.TrimPrefix(name, prefix))
	return n, strings.HasPrefix(name, prefix) && err == nil && n >= 0
}

// Read returns every recorded (released) allocation of addr's shard.
func Read(ctx context.Context, r client.Reader, addr netip.Addr) ([]history.Record, error) {
	var list v1alpha1.IPAMHistoryList
	if err := r.List(ctx, &list, client.MatchingLabels{v1alpha1.LabelHistoryShard: history.ShardLabel(history.ShardOf(addr))}); err != nil {
		return nil, err
	}
	var out []history.Record
	for i := range list.Items {
		recs, err := Decode(list.Items[i].Spec.Records)
		if err != nil {
			return nil, fmt.Errorf("IPAMHistory %s: %w", list.Items[i].Name, err)
		}
		out = append(out, recs...)
	}
	return out, nil
}

// Expire deletes the segments of the days wholly older than the retention
// window and returns how many it deleted.
func (a Archive) Expire(ctx context.Context, now time.Time, retention time.Duration) (int, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("IPAMHistoryList"))
	if err := a.Live.List(ctx, &list, client.HasLabels{v1alpha1.LabelHistoryDay}); err != nil {
		return 0, err
	}
	deleted := 0
	var errs []error
	for i := range list.Items {
		o := &list.Items[i]
		if !history.Expired(o.Labels[v1alpha1.LabelHistoryDay], now, retention) {
			continue
		}
		if err := a.Client.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	return deleted, errors.Join(errs...)
}
