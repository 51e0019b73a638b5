package poolctl

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	storev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/source"
)

// Modes say whose IPPools the plugin reads, as the webhook's --mode.
const (
	ModeNative = "native"
	ModeCalico = "calico"
)

// Cluster reads what the decisions need, with the user's credentials. It
// lists pools with the webhook's own pools/source code, so explain and
// admission build the same policy.Index.
type Cluster struct {
	client client.Client
	pools  source.Source
	// Rules are the mode's freeze rules.
	Rules policy.Rules
}

// Connect builds a Cluster for a mode.
func Connect(cfg *rest.Config, mode string) (*Cluster, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := storev1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("cannot reach the API server at %s: %w", cfg.Host, err)
	}
	out := &Cluster{client: c}
	switch mode {
	case ModeNative, "":
		out.pools = source.Native{Reader: c}
	case ModeCalico:
		d, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return nil, err
		}
		gv, err := source.DiscoverCalico(d)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotInstalled, err)
		}
		out.pools = source.Calico{Reader: c, GroupVersion: gv}
		out.Rules = policy.Rules{PinDefaults: true}
	default:
		return nil, fmt.Errorf("%w: --mode %q: want %s or %s", ErrUsage, mode, ModeNative, ModeCalico)
	}
	return out, nil
}

// Index lists the pools.
func (c *Cluster) Index(ctx context.Context) (*policy.Index, error) {
	ix, err := c.pools.Snapshot(ctx)
	// source wraps the API error with %w; apiError's checks see through it.
	return ix, apiError("list IPPools", err)
}

// Namespace reads one namespace.
func (c *Cluster) Namespace(ctx context.Context, name string) (policy.Namespace, error) {
	var ns corev1.Namespace
	if err := c.client.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return policy.Namespace{}, apiError(fmt.Sprintf("get namespace %q", name), err)
	}
	return namespaceOf(&ns), nil
}

// Subject reads what every explain decides on: the namespace and the
// pool index.
func (c *Cluster) Subject(ctx context.Context, namespace string) (policy.Namespace, *policy.Index, error) {
	ns, err := c.Namespace(ctx, namespace)
	if err != nil {
		return policy.Namespace{}, nil, err
	}
	ix, err := c.Index(ctx)
	return ns, ix, err
}

// Namespaces lists every namespace, by name.
func (c *Cluster) Namespaces(ctx context.Context) (map[string]policy.Namespace, error) {
	var list corev1.NamespaceList
	if err := c.client.List(ctx, &list); err != nil {
		return nil, apiError("list namespaces", err)
	}
	out := make(map[string]policy.Namespace, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = namespaceOf(&list.Items[i])
	}
	return out, nil
}

// Pod reads one pod.
func (c *Cluster) Pod(ctx context.Context, namespace, name string) (Pod, error) {
	var p corev1.Pod
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil {
		return Pod{}, apiError(fmt.Sprintf("get pod %q in namespace %q", name, namespace), err)
	}
	return podOf(&p), nil
}

// Pods lists the pods of a namespace, or of all with namespace "".
func (c *Cluster) Pods(ctx context.Context, namespace string) ([]Pod, error) {
	var list corev1.PodList
	what := "list pods in all namespaces"
	if namespace != "" {
		what = fmt.Sprintf("list pods in namespace %q", namespace)
	}
	if err := c.client.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, apiError(what, err)
	}
	out := make([]Pod, len(list.Items))
	for i := range list.Items {
		out[i] = podOf(&list.Items[i])
	}
	return out, nil
}

// NodeLabels reads a node's labels.
func (c *Cluster) NodeLabels(ctx context.Context, name string) (map[string]string, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	if err := c.client.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		return nil, apiError(fmt.Sprintf("get node %q", name), err)
	}
	if obj.Labels == nil {
		return map[string]string{}, nil
	}
	return obj.Labels, nil
}

func namespaceOf(ns *corev1.Namespace) policy.Namespace {
	return policy.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations, ResourceVersion: ns.ResourceVersion}
}

func podOf(p *corev1.Pod) Pod {
	out := Pod{
		Namespace:   p.Namespace,
		Name:        p.Name,
		Annotations: p.Annotations,
		HostNetwork: p.Spec.HostNetwork,
		Node:        p.Spec.NodeName,
		Finished:    p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
	}
	ips := p.Status.PodIPs
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: p.Status.PodIP}}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out.IPs = append(out.IPs, a)
		}
	}
	return out
}
