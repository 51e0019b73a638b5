package poolctl

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
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
	// core reads pods in protobuf, page by page (EachPod).
	core  rest.Interface
	pools source.Source
	// Rules are the mode's freeze rules.
	Rules policy.Rules
}

// Connect builds a Cluster for a mode.
func Connect(cfg *rest.Config, mode string) (*Cluster, error) {
	cfg = clientConfig(cfg)
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
	// One HTTP client, so both clients share a connection.
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the API server at %s: %w", cfg.Host, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme, HTTPClient: hc})
	if err != nil {
		return nil, fmt.Errorf("cannot reach the API server at %s: %w", cfg.Host, err)
	}
	core, err := coreClient(cfg, hc, scheme)
	if err != nil {
		return nil, err
	}
	out := &Cluster{client: c, core: core}
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

// clientConfig is the user's configuration without client-side
// throttling (unless they set a QPS): client-go otherwise allows five
// requests a second after a burst of ten, and drift -A reads the pods of
// a large cluster in hundreds of pages, one after the other, which it
// held back for seconds. The API server's priority and fairness is what
// protects it, as for controller-runtime's own configuration loader.
func clientConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.RateLimiter == nil {
		cfg.QPS = -1
	}
	return cfg
}

// coreClient is a REST client of the core API that asks for protobuf
// (JSON if the server or a proxy cannot), and decodes errors as
// Statuses, so that apiError sees through them.
func coreClient(cfg *rest.Config, hc *http.Client, scheme *runtime.Scheme) (rest.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return rest.RESTClientForConfigAndClient(cfg, hc)
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
	out := map[string]policy.Namespace{}
	err := listPages(ctx, c.client, &corev1.NamespaceList{}, nil, func(l *corev1.NamespaceList) {
		for i := range l.Items {
			out[l.Items[i].Name] = namespaceOf(&l.Items[i])
		}
	})
	if err != nil {
		return nil, apiError("list namespaces", err)
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

// EachPod reads the pods of a namespace, or of all with namespace "", a
// page at a time, and hands each to fn, so that a cluster of 150,000
// pods costs the command one page, not every pod at once. Pages come in
// protobuf (Kubernetes' own generated decoder, several times cheaper than
// JSON on both sides), and of each pod only what the verdicts read is
// kept.
func (c *Cluster) EachPod(ctx context.Context, namespace string, fn func(Pod)) error {
	what := "list pods in all namespaces"
	if namespace != "" {
		what = fmt.Sprintf("list pods in namespace %q", namespace)
	}
	cont := ""
	for {
		var page corev1.PodList
		err := c.core.Get().Namespace(namespace).Resource("pods").
			VersionedParams(&metav1.ListOptions{Limit: pageSize, Continue: cont}, metav1.ParameterCodec).
			Do(ctx).Into(&page)
		if err != nil {
			return apiError(what, err)
		}
		for i := range page.Items {
			fn(podOf(&page.Items[i]))
		}
		if cont = page.Continue; cont == "" {
			return nil
		}
	}
}

// pageSize is how many objects a list asks for at once. Not kubectl's
// 500: the API server's watch cache serves each page by walking past the
// pages before it, so its cost grows with the square of the pods over the
// page size (BenchmarkCommands: at 10,000 pods it took 105,000 pods out of
// its cache with pages of 500, 15,000 with pages of 5,000), while a page
// of 5,000 pods costs this process some 50 MB at once. A variable for the
// tests, which page through a few pods.
var pageSize int64 = 5000

// listPages lists into l a page at a time, calling page for each.
func listPages[L client.ObjectList](ctx context.Context, c client.Reader, l L, opts []client.ListOption, page func(L)) error {
	cont := ""
	for {
		if err := c.List(ctx, l, append(opts, client.Limit(pageSize), client.Continue(cont))...); err != nil {
			return err
		}
		page(l)
		if cont = l.GetContinue(); cont == "" {
			return nil
		}
	}
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
