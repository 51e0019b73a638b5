package ipam

import (
	"context"
	"errors"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/policy"
)

// ErrPodGone: the pod does not exist or was replaced by another of the same
// name (CNI code 3, unknown container).
var ErrPodGone = errors.New("pod not found")

// facts is everything an ADD reads before it writes.
type facts struct {
	pod      policy.PodFacts
	pools    kubestore.PoolSet
	affinity *allocator.Affinity
}

// cachedMeta reads an object's metadata from the API server's watch cache
// (resourceVersion 0): no etcd round trip. Used for what is read-only here
// and changes rarely (pod annotations are frozen; labels and pools change
// by hand); never for the affinity or blocks, which feed conditional
// writes.
var cachedMeta = kubestore.ReadOpts{Cached: true, MetadataOnly: true}

// readFacts issues the ADD's reads in parallel: the pod (unless the runtime
// passed its annotations), its namespace, the node and the IPPools, and
// the node's affinity (from the node-local cache when it has a copy). One
// round trip of latency, four or five requests. The attachment's claim is
// not read: Assign finds an existing one when it writes its own.
func readFacts(ctx context.Context, cache *blockCache, cfg *Config, pod allocator.PodRef) (facts, error) {
	c := cache.Client
	var (
		f    = facts{pod: policy.PodFacts{Namespace: pod.Namespace, Name: pod.Name, Node: cfg.Node}}
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				fail(err)
			}
		}()
	}
	if cfg.PodAnnotations != nil {
		f.pod.Annotations = cfg.PodAnnotations
	} else {
		run(func() error {
			var p metav1.PartialObjectMetadata
			opts := cachedMeta
			opts.Namespace = pod.Namespace
			err := c.Get(ctx, kubestore.Pods, pod.Name, opts, &p)
			if apierrors.IsNotFound(err) || (err == nil && !policy.IsThePod(string(p.UID), p.Annotations, pod.UID)) {
				// The watch cache may be a moment behind a pod just
				// created: ask etcd before calling the pod gone.
				opts.Cached = false
				err = c.Get(ctx, kubestore.Pods, pod.Name, opts, &p)
			}
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%w: pod %s does not exist", ErrPodGone, pod)
			}
			if err != nil {
				return kubeErr(err, "reading pod "+pod.String())
			}
			if !policy.IsThePod(string(p.UID), p.Annotations, pod.UID) {
				return fmt.Errorf("%w: pod %s has UID %s, the runtime asked for UID %s (the pod was deleted and recreated)", ErrPodGone, pod, p.UID, pod.UID)
			}
			f.pod.Annotations = p.Annotations
			return nil
		})
	}
	run(func() error {
		var ns metav1.PartialObjectMetadata
		err := c.Get(ctx, kubestore.Namespaces, pod.Namespace, cachedMeta, &ns)
		if err != nil && !apierrors.IsNotFound(err) {
			return kubeErr(err, "reading namespace "+pod.Namespace)
		}
		f.pod.NamespaceLabels = ns.Labels
		return nil
	})
	run(func() error {
		var n metav1.PartialObjectMetadata
		opts := cachedMeta
		err := c.Get(ctx, kubestore.Nodes, cfg.Node, opts, &n)
		if apierrors.IsNotFound(err) {
			// The watch cache may be a moment behind a node that has
			// just registered: ask etcd before refusing it.
			opts.Cached = false
			err = c.Get(ctx, kubestore.Nodes, cfg.Node, opts, &n)
		}
		if apierrors.IsNotFound(err) {
			// Almost always a plugin that took its node name from the
			// host name, which need not be the Node's name. Allocating
			// anyway would record the addresses under a node that does
			// not exist: pools' nodeSelectors would judge the pod by no
			// labels, and its blocks would look like a deleted node's.
			return fmt.Errorf(`%w: no Node is named %q (the plugin's node name, taken from %s); set ipam.nodeName in the plugin's network configuration to this node's name as "kubectl get nodes" shows it (when the chart writes the network configuration, value cni.networkConfig, its installer fills ipam.nodeName in)`,
				ErrNodeNotRegistered, cfg.Node, cfg.NodeFrom)
		}
		if err != nil {
			return kubeErr(err, "reading node "+cfg.Node)
		}
		f.pod.NodeLabels = n.Labels
		return nil
	})
	run(func() error {
		ps, err := cache.Pools(ctx, true)
		f.pools = ps
		return err
	})
	run(func() error {
		a, err := cache.GetAffinity(ctx, cfg.Node)
		f.affinity = a
		return err
	})
	wg.Wait()
	return f, errors.Join(errs...)
}

// kubeErr marks errors reaching the API server as ErrUnavailable.
func kubeErr(err error, what string) error {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Errorf("%s: %w: %w", what, allocator.ErrRefused, err)
	}
	return fmt.Errorf("%s: %w: %w", what, allocator.ErrUnavailable, err)
}
