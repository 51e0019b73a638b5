// Package source serves the pools to admission as a policy.Index, built
// from informer caches so that a review makes no API call.
package source

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools"
)

// Source returns a snapshot of the pools the policy checks against.
type Source interface {
	Snapshot(ctx context.Context) (*policy.Index, error)
}

// Native serves poolguard's IPPools from a (cached) reader.
type Native struct {
	Reader client.Reader
}

// Snapshot lists the IPPools and indexes them.
func (n Native) Snapshot(ctx context.Context) (*policy.Index, error) {
	var list v1alpha1.IPPoolList
	if err := n.Reader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing IPPools: %w", err)
	}
	out := make([]policy.Pool, 0, len(list.Items))
	for i := range list.Items {
		// An invalid pool is kept, marked Invalid: naming it is refused
		// as invalid, not as unknown.
		p, _ := pools.FromIPPool(&list.Items[i])
		out = append(out, p)
	}
	return policy.NewIndex(out), nil
}
