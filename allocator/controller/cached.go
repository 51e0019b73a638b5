package controller

import (
	"context"
	"errors"
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// errUnexpected: a cache or list holds objects of another type than asked
// for.
var errUnexpected = errors.New("unexpected object in the cache")

// informerSource is a reader that is an informer cache (cache.Cache).
type informerSource interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// storeOwner is an informer that hands out its store (client-go's shared
// informers, which controller-runtime's cache is made of).
type storeOwner interface {
	GetStore() toolscache.Store
}

// cachedObjects returns the objects of obj's kind that r holds, as the
// cache's own objects: read only, never to be changed. From an informer
// cache it reads the informer's store, which hands out pointers: one
// slice, where the cache's List (even with client.UnsafeDisableDeepCopy)
// copies every object's struct into a new list, about 100 MB a sweep at
// 150,000 pods, and as much work for the garbage collector. Any other
// reader is listed with client.UnsafeDisableDeepCopy into list.
func cachedObjects[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, r client.Reader, obj PT, list client.ObjectList) ([]PT, error) {
	if src, ok := r.(informerSource); ok {
		inf, err := src.GetInformer(ctx, obj)
		if err != nil {
			return nil, err
		}
		if s, ok := inf.(storeOwner); ok {
			return typed[PT](s.GetStore().List(), obj)
		}
	}
	if err := r.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	items, err := apimeta.ExtractList(list) // pointers to the list's items
	if err != nil {
		return nil, err
	}
	return typed[PT](items, obj)
}

// typed asserts that every item is a PT, the kind of obj.
func typed[PT any, X any](items []X, obj any) ([]PT, error) {
	out := make([]PT, len(items))
	for i, x := range items {
		o, ok := any(x).(PT)
		if !ok {
			return nil, fmt.Errorf("%w: a list of %T holds a %T", errUnexpected, obj, x)
		}
		out[i] = o
	}
	return out, nil
}
