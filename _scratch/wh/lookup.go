package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/policy"
)

// namespaceGVK is read as metadata only: the policy needs a namespace's
// labels, annotations and resourceVersion, and caching just the metadata
// keeps the informer small in large clusters.
var namespaceGVK = corev1.SchemeGroupVersion.WithKind("Namespace")

// Lookup reads the namespaces and nodes the policy needs.
type Lookup struct {
	// Cache is the informer-backed reader used on every request.
	Cache client.Reader
	// Live is a direct reader, used only when the cache has not yet seen an
	// object (a namespace created a moment ago) and for the rare pod that is
	// bound to a node at creation.
	Live client.Reader
}

// Namespace returns the policy's view of a namespace.
func (l Lookup) Namespace(ctx context.Context, name string) (policy.Namespace, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(namespaceGVK)
	err := l.Cache.Get(ctx, client.ObjectKey{Name: name}, obj)
	if apierrors.IsNotFound(err) && l.Live != nil {
		err = l.Live.Get(ctx, client.ObjectKey{Name: name}, obj)
	}
	if err != nil {
		return policy.Namespace{}, fmt.Errorf("reading namespace %q: %w", name, err)
	}
	return policy.Namespace{
		Name:            obj.Name,
		Labels:          obj.Labels,
		Annotations:     obj.Annotations,
		ResourceVersion: obj.ResourceVersion,
	}, nil
}

// NodeLabels returns the labels of a node.
func (l Lookup) NodeLabels(ctx context.Context, name string) (map[string]string, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	r := l.Live
	if r == nil {
		r = l.Cache
	}
	if err := r.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		return nil, fmt.Errorf("reading node %q: %w", name, err)
	}
	if obj.Labels == nil {
		return map[string]string{}, nil
	}
	return obj.Labels, nil
}
