package kubestore

import (
	"fmt"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
)

// NewScheme returns a scheme with the core group's types, the IPPool and
// the allocator's objects: what the plugin touches, and no more (each
// registered group costs every short-lived plugin process start-up time).
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, apiv1alpha1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// StaticMapper maps the kinds the allocator touches without discovery: a
// CNI plugin process lives for one request, and discovery would cost more
// round trips than the request itself.
func StaticMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	core := corev1.SchemeGroupVersion
	m.Add(core.WithKind("Pod"), meta.RESTScopeNamespace)
	m.Add(core.WithKind("Node"), meta.RESTScopeRoot)
	m.Add(core.WithKind("Namespace"), meta.RESTScopeRoot)
	for _, k := range []string{"IPPool", "IPAMBlock", "IPAMClaim", "IPAMAffinity"} {
		m.Add(schema.GroupVersionKind{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Kind: k}, meta.RESTScopeRoot)
	}
	return m
}

// NewClient returns a direct (uncached) client for a short-lived process:
// static REST mapping, no client-side rate limit (each plugin process
// makes a handful of requests; the API server's priority and fairness
// protects it), JSON.
//
// The transport keeps to one connection: a plugin's first requests go out
// in parallel, and Go's transport would otherwise dial (and TLS-handshake)
// once per request before the first HTTP/2 connection is up. Handshakes
// cost the API server more CPU than the requests.
func NewClient(cfg *rest.Config) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	if cfg.Transport == nil && cfg.WrapTransport == nil {
		tlsCfg, err := rest.TLSConfigFor(cfg)
		if err != nil {
			return nil, fmt.Errorf("TLS config: %w", err)
		}
		cfg.Transport = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxConnsPerHost:     1,
			IdleConnTimeout:     90 * time.Second,
		}
		cfg.TLSClientConfig = rest.TLSClientConfig{}
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("HTTP client: %w", err)
	}
	return client.New(cfg, client.Options{Scheme: scheme, Mapper: StaticMapper(), HTTPClient: hc})
}
