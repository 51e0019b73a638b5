package kubestore

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
)

// Client is the store's connection to the API server: client-go's REST
// client, with the requests' paths fixed and objects as plain JSON. No
// scheme of API types, no discovery, no cache: the CNI plugin is a process
// per request, and registering Kubernetes' API types or discovering
// resources would cost it more than the request (client-go's generated
// scheme alone takes longer to initialise than an ADD's reads). Errors are
// the API server's Status, decoded as apierrors, so apierrors.IsNotFound
// and friends work on them.
type Client struct {
	rest *rest.RESTClient
}

// Resource names one kind of object the store reads or writes.
type Resource struct {
	// Path is the collection's path; namespaced resources take the
	// namespace with %s.
	Path string
	GVK  schema.GroupVersionKind
}

// The resources the allocator touches.
var (
	Blocks     = ipam("ipamblocks", "IPAMBlock")
	Claims     = ipam("ipamclaims", "IPAMClaim")
	Affinities = ipam("ipamaffinities", "IPAMAffinity")
	IPPools    = Resource{Path: "/apis/" + apiv1alpha1.GroupVersion.String() + "/ippools", GVK: apiv1alpha1.GroupVersion.WithKind("IPPool")}
	Pods       = Resource{Path: "/api/v1/namespaces/%s/pods", GVK: corev1.SchemeGroupVersion.WithKind("Pod")}
	Namespaces = Resource{Path: "/api/v1/namespaces", GVK: corev1.SchemeGroupVersion.WithKind("Namespace")}
	Nodes      = Resource{Path: "/api/v1/nodes", GVK: corev1.SchemeGroupVersion.WithKind("Node")}
)

func ipam(plural, kind string) Resource {
	return Resource{Path: "/apis/" + v1alpha1.GroupVersion.String() + "/" + plural, GVK: v1alpha1.GroupVersion.WithKind(kind)}
}

func (r Resource) collection(namespace string) string {
	if namespace != "" {
		return fmt.Sprintf(r.Path, namespace)
	}
	return r.Path
}

// NewClient returns a client on one connection, rate limited as cfg says
// (the plugin passes a negative QPS: no client-side limit, as each process
// makes a handful of requests and the API server's priority and fairness
// protects it).
//
// One connection, because a plugin's first requests go out in parallel,
// and Go's transport would otherwise dial (and TLS-handshake) once per
// request before the first HTTP/2 connection is up. Handshakes cost the
// API server more CPU than the requests.
func NewClient(cfg *rest.Config) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	// Only Status is ever decoded through the scheme: error responses.
	statuses := runtime.NewScheme()
	metav1.AddToGroupVersion(statuses, schema.GroupVersion{Version: "v1"})
	cfg.ContentConfig = rest.ContentConfig{
		AcceptContentTypes:   "application/json",
		ContentType:          "application/json",
		NegotiatedSerializer: serializer.NewCodecFactory(statuses).WithoutConversion(),
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
	rc, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("REST client: %w", err)
	}
	return &Client{rest: rc}, nil
}

// ReadOpts tune a read.
type ReadOpts struct {
	// Namespace of a namespaced resource.
	Namespace string
	// Cached reads from the API server's watch cache (resourceVersion
	// 0): cheaper, possibly a moment behind.
	Cached bool
	// FieldSelector filters a list.
	FieldSelector string
	// MetadataOnly asks for the objects' metadata only
	// (PartialObjectMetadata, or its List): the API server encodes, and
	// the plugin decodes, a fraction of a pod or of a block.
	MetadataOnly bool
}

// Get reads one object into out.
func (c *Client) Get(ctx context.Context, r Resource, name string, o ReadOpts, out any) error {
	return c.read(ctx, r.collection(o.Namespace)+"/"+name, "PartialObjectMetadata", o, out)
}

// List reads a collection into out.
func (c *Client) List(ctx context.Context, r Resource, o ReadOpts, out any) error {
	return c.read(ctx, r.collection(o.Namespace), "PartialObjectMetadataList", o, out)
}

func (c *Client) read(ctx context.Context, path, metaKind string, o ReadOpts, out any) error {
	req := c.rest.Get().AbsPath(path)
	if o.Cached {
		req = req.Param("resourceVersion", "0")
	}
	if o.FieldSelector != "" {
		req = req.Param("fieldSelector", o.FieldSelector)
	}
	if o.MetadataOnly {
		req = req.SetHeader("Accept", "application/json;as="+metaKind+";g=meta.k8s.io;v=v1,application/json")
	}
	return decode(req.Do(ctx), out)
}

// Create writes a new object and reads the stored one back into it.
func (c *Client) Create(ctx context.Context, r Resource, obj runtime.Object) error {
	obj.GetObjectKind().SetGroupVersionKind(r.GVK)
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return decode(c.rest.Post().AbsPath(r.collection("")).Body(body).Do(ctx), obj)
}

// Update replaces an object, guarded by the resourceVersion it carries,
// and reads the stored one back into it.
func (c *Client) Update(ctx context.Context, r Resource, name string, obj runtime.Object) error {
	obj.GetObjectKind().SetGroupVersionKind(r.GVK)
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return decode(c.rest.Put().AbsPath(r.collection(""), name).Body(body).Do(ctx), obj)
}

// Delete deletes an object if its resourceVersion is still rv.
func (c *Client) Delete(ctx context.Context, r Resource, name, rv string) error {
	opts := metav1.DeleteOptions{
		TypeMeta:      metav1.TypeMeta{APIVersion: "v1", Kind: "DeleteOptions"},
		Preconditions: &metav1.Preconditions{ResourceVersion: &rv},
	}
	body, err := json.Marshal(&opts)
	if err != nil {
		return err
	}
	return c.rest.Delete().AbsPath(r.collection(""), name).Body(body).Do(ctx).Error()
}

// decode returns the response's error, or decodes its body into out.
func decode(res rest.Result, out any) error {
	if err := res.Error(); err != nil {
		return err
	}
	body, err := res.Raw()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decoding the API server's answer: %w", err)
	}
	return nil
}
