package source

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/calico"
)

// ErrNoCalicoPools: the API server serves Calico's IPPool in neither group.
var ErrNoCalicoPools = errors.New("no Calico IPPool API served")

// Calico serves Calico's IPPools of one group version from a (cached)
// reader, as unstructured objects.
type Calico struct {
	Reader client.Reader
	// GroupVersion is where the pools are served (see DiscoverCalico).
	GroupVersion schema.GroupVersion
}

// Object returns an empty IPPool of the source's group version, for
// asking a cache for its informer.
func (c Calico) Object() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(c.GroupVersion.WithKind(calico.IPPoolKind))
	return u
}

// Snapshot lists the pools and indexes them. A pool whose CIDR does not
// parse is left out (naming it reads as unknown); one whose selector does
// not parse is kept as unusable.
func (c Calico) Snapshot(ctx context.Context) (*policy.Index, error) {
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(c.GroupVersion.WithKind(calico.IPPoolKind + "List"))
	if err := c.Reader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing Calico IPPools (%s): %w", c.GroupVersion, err)
	}
	out := make([]policy.Pool, 0, len(list.Items))
	for i := range list.Items {
		if p, err := calico.FromUnstructured(&list.Items[i]); err == nil {
			out = append(out, p)
		}
	}
	return policy.NewIndex(out), nil
}

// DiscoverCalico returns the group version the API server serves Calico's
// IPPools in, preferring projectcalico.org/v3 over crd.projectcalico.org/v1.
func DiscoverCalico(d discovery.DiscoveryInterface) (schema.GroupVersion, error) {
	var errs []error
	for _, gv := range calico.PreferredVersions {
		list, err := d.ServerResourcesForGroupVersion(gv.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", gv, err))
			continue
		}
		for _, r := range list.APIResources {
			if r.Name == calico.IPPoolResource {
				return gv, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s serves no %s", gv, calico.IPPoolResource))
	}
	return schema.GroupVersion{}, fmt.Errorf("%w (is Calico installed?): %w", ErrNoCalicoPools, errors.Join(errs...))
}
