package exportserver

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/export"
	kubestorev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/pools/source"
)

// Field indexes of the IPAMClaim cache, so that a namespace's or a pool's
// list reads only its own claims, not every claim of the cluster.
const (
	NamespaceField = "spec.pod.namespace"
	PoolField      = "spec.addresses.pool"
)

// IndexClaim returns a claim's values for each field index.
func IndexClaim(field string) func(client.Object) []string {
	return func(o client.Object) []string {
		c, ok := o.(*kubestorev1alpha1.IPAMClaim)
		if !ok {
			return nil
		}
		if field == NamespaceField {
			return []string{c.Spec.Pod.Namespace}
		}
		var out []string
		for _, a := range c.Spec.Addresses {
			if len(out) == 0 || out[len(out)-1] != a.Pool {
				out = append(out, a.Pool)
			}
		}
		return out
	}
}

// Cached reads the pools from the webhook's pool source (either mode's
// IPPools, as admission sees them) and the addresses from IPAMClaims in a
// cache indexed by NamespaceField and PoolField.
type Cached struct {
	PoolSource source.Source
	// Claims reads IPAMClaims; nil: the addresses are not known here
	// (Calico mode, or another IPAM allocates).
	Claims client.Reader
	// Unknown says why the addresses are not known, when Claims is nil.
	Unknown string
}

// Pools lists the pools that have a range.
func (c Cached) Pools(ctx context.Context) ([]export.Pool, error) {
	ix, err := c.PoolSource.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return export.PoolsFromIndex(ix), nil
}

// Addresses lists the claims of namespace (or of pool, or all) without
// copying them out of the cache, and returns their addresses (those of
// claims being deleted left out).
func (c Cached) Addresses(ctx context.Context, namespace, pool string) ([]export.Address, error) {
	if c.Claims == nil {
		return nil, fmt.Errorf("%w: %s", export.ErrAddressesUnknown, c.Unknown)
	}
	opts := []client.ListOption{client.UnsafeDisableDeepCopy}
	switch {
	case namespace != "":
		opts = append(opts, client.MatchingFields{NamespaceField: namespace})
	case pool != "":
		opts = append(opts, client.MatchingFields{PoolField: pool})
	}
	var list kubestorev1alpha1.IPAMClaimList
	if err := c.Claims.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing IPAMClaims: %w", err)
	}
	return export.AddressesFromClaims(list.Items), nil
}

// Static serves fixed pools and addresses: tests and benchmarks.
type Static struct {
	PoolList    []export.Pool
	AddressList []export.Address
}

// Pools returns the pools.
func (s Static) Pools(context.Context) ([]export.Pool, error) { return s.PoolList, nil }

// Addresses returns every address; export.Select narrows them.
func (s Static) Addresses(context.Context, string, string) ([]export.Address, error) {
	return s.AddressList, nil
}
