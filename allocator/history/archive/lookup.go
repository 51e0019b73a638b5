package archive

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// WhoHad answers which attachments held addr at t (every one the history
// and the live claims know of when t is zero), oldest first: the recorded
// releases of addr's shard, plus the claims of that shard (found by their
// shard label, never by listing every claim of the cluster), of which one
// may hold addr now and others may be released but not recorded yet
// (those count as released at their deletion).
func WhoHad(ctx context.Context, r client.Reader, addr netip.Addr, t time.Time) ([]history.Record, error) {
	addr = addr.Unmap()
	recs, err := Read(ctx, r, addr)
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s: %w", addr, err)
	}
	live, err := Claimed(ctx, r, addr)
	if err != nil {
		return nil, fmt.Errorf("reading the claims of %s: %w", addr, err)
	}
	return history.Lookup(append(recs, live...), addr, t), nil
}

// Claimed returns the records of the claims that name addr: the one
// holding it now, and released ones the recorder has not let go yet.
func Claimed(ctx context.Context, r client.Reader, addr netip.Addr) ([]history.Record, error) {
	key := v1alpha1.LabelClaimShardIPv6
	if addr.Is4() {
		key = v1alpha1.LabelClaimShardIPv4
	}
	var claims v1alpha1.IPAMClaimList
	if err := r.List(ctx, &claims, client.MatchingLabels{key: history.ShardLabel(history.ShardOf(addr))}); err != nil {
		return nil, err
	}
	var out []history.Record
	for i := range claims.Items {
		for _, rec := range RecordsOf(&claims.Items[i]) {
			if rec.Address == addr {
				out = append(out, rec)
			}
		}
	}
	return out, nil
}
