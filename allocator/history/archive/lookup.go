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
// and the live claims know of when t is zero), oldest first: the claims
// of addr's shard (found by their shard label), of which one may hold
// addr now and others may be released but not recorded yet (those count
// as released at their deletion), plus the recorded releases of the
// shard.
//
// The claims are read first. The recorder files a released claim's
// records, then lets the claim go: read the other way round, a release
// recorded between the two reads would be in neither (not yet in the
// history, no longer a claim). Read this way, it is in the claims, and in
// the history too if recorded since (Lookup keeps it once).
func WhoHad(ctx context.Context, r client.Reader, addr netip.Addr, t time.Time) ([]history.Record, error) {
	addr = addr.Unmap()
	live, err := Claimed(ctx, r, addr)
	if err != nil {
		return nil, fmt.Errorf("reading the claims of %s: %w", addr, err)
	}
	recs, err := Read(ctx, r, addr)
	if err != nil {
		return nil, fmt.Errorf("reading the history of %s: %w", addr, err)
	}
	return history.Lookup(append(recs, live...), addr, t), nil
}

// Claimed returns the records of the claims that name addr: the one
// holding it now, and released ones the recorder has not let go yet.
//
// It lists the claims of addr's shard by label. The API server answers
// from its watch cache, but matches the label against every claim of the
// cluster there (about a microsecond each). The holder alone could be
// found without that, through the IPAMBlock holding addr (named after
// its CIDR, from the pool's block size), whose slot names the claim; but
// a released claim the recorder has not filed yet is no longer in any
// block, and only its labels find it: who-had must not miss it, and the
// list finds the holder too. The list is a consistent read: with
// resourceVersion 0 it would save one request to etcd and could miss a
// claim made, or a release, moments before.
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
