package source

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"poolguard.dev/poolguard/api/v1alpha1"
)

// FromManager serves a mode's IPPools from the manager's informer cache:
// poolguard's (Cached, rebuilt only when a pool changes), or, with calico,
// Calico's, in the group discovery finds (returned, for the caller to
// say which). Admission and the live export build theirs with it, over
// the one informer the manager's cache shares.
func FromManager(ctx context.Context, mgr manager.Manager, calico bool) (Source, schema.GroupVersion, error) {
	if !calico {
		inf, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.IPPool{})
		if err != nil {
			return nil, schema.GroupVersion{}, fmt.Errorf("IPPool informer: %w", err)
		}
		s, err := NewCached(inf, mgr.GetCache())
		return s, v1alpha1.GroupVersion, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return nil, schema.GroupVersion{}, err
	}
	gv, err := DiscoverCalico(dc)
	if err != nil {
		return nil, schema.GroupVersion{}, err
	}
	cal := Calico{Reader: mgr.GetCache(), GroupVersion: gv}
	inf, err := mgr.GetCache().GetInformer(ctx, cal.Object())
	if err != nil {
		return nil, gv, fmt.Errorf("informer for calico IPPools (%s): %w", gv, err)
	}
	s, err := Wrap(inf, cal)
	return s, gv, err
}
