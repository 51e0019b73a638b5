// Package exportserver serves the live export for firewalls (SPEC §7) from
// every webhook replica: the pool CIDRs and the addresses in use per pool
// and per namespace, as plain text, nft scripts or JSON (package export
// renders them), over HTTPS with the webhook's serving certificate, to
// callers the API server authenticates (a bearer token, by TokenReview) or
// that present a client certificate of the export CA, and only when a
// SubjectAccessReview allows them to get the list:
//
//	GET /v1/pools                          every pool's CIDR   get exports/pools          (no name)
//	GET /v1/pools/{pool}                   one pool's CIDR     get exports/pools          name {pool}
//	GET /v1/pools/{pool}/addresses         a pool's addresses  get exports/pools          name {pool}
//	GET /v1/namespaces/{ns}/addresses      a namespace's       get exports/namespaces     name {ns}
//
// in API group ipam.poolguard.dev, cluster-scoped, so a ClusterRole with
// resourceNames can give a firewall one namespace's list and nothing
// else. Query parameters: format (text, nft, json), family (4, 6), pool
// (a namespace's addresses in one pool), and for nft table, tablefamily
// and set (see export.ParseQuery).
//
// The lists are read from the manager's informer caches (IPPools through
// the webhook's pool source, IPAMClaims indexed by namespace and pool), so
// a request makes no API call besides the cached reviews, and a list
// follows a pod's start or stop as fast as the claim's watch event.
package exportserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"poolguard.dev/poolguard/allocator/export"
)

// The authorization the lists need: verb get on this resource of this
// group, with the subresource and name of the list.
const (
	Group                = "ipam.poolguard.dev"
	Resource             = "exports"
	SubresourcePools     = "pools"
	SubresourceNamespace = "namespaces"
	Verb                 = "get"
)

// DefaultReaderRole is the chart's ClusterRole for export readers under
// the default release name; the 403 message names Handler.ReaderRole.
const DefaultReaderRole = "poolguard-export-reader"

// Reader reads what the lists are built from.
type Reader interface {
	// Pools returns every pool.
	Pools(ctx context.Context) ([]export.Pool, error)
	// Addresses returns the addresses in use: at least those of namespace
	// and of pool when they are not empty (export.Select narrows them).
	// export.ErrAddressesUnknown: this install does not know them.
	Addresses(ctx context.Context, namespace, pool string) ([]export.Address, error)
}

// Authorizer is the part of the API server's authorizer the handler
// uses (Delegated's SubjectAccessReview authorizer is one).
type Authorizer interface {
	Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error)
}

// Handler serves the export routes.
type Handler struct {
	Reader Reader
	// Authenticator identifies the caller: a verified client certificate
	// (Certificates) or a bearer token (a TokenReview).
	Authenticator authenticator.Request
	// Authorizer decides, by SubjectAccessReview, whether the caller may
	// get the list.
	Authorizer Authorizer
	// ReaderRole names the ClusterRole that grants the lists, in the 403
	// message (DefaultReaderRole when empty).
	ReaderRole string
	Log        logr.Logger

	once sync.Once
	mux  *http.ServeMux
}

// requests counts answers by list and status code.
var requests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "poolguard_export_requests_total",
	Help: "Requests to the live export by list (cidrs, pool, namespace) and HTTP status code.",
}, []string{"list", "code"})

func init() {
	metrics.Registry.MustRegister(requests)
}

// ServeHTTP routes a request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() {
		h.mux = http.NewServeMux()
		h.mux.HandleFunc("/v1/pools", h.route(export.KindCIDRs))
		h.mux.HandleFunc("/v1/pools/{pool}", h.route(export.KindCIDRs))
		h.mux.HandleFunc("/v1/pools/{pool}/addresses", h.route(export.KindPool))
		h.mux.HandleFunc("/v1/namespaces/{namespace}/addresses", h.route(export.KindNamespace))
		h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			plain(w, http.StatusNotFound, "no such export: the lists are GET /v1/pools, /v1/pools/NAME, /v1/pools/NAME/addresses and /v1/namespaces/NAME/addresses")
		})
	})
	h.mux.ServeHTTP(w, r)
}

// bufs holds response bodies between requests: a list of 10,000
// addresses is a few hundred KiB, rendered before the status is sent.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// route serves one kind of list: authenticate, authorize, parse the
// query, read, select, render.
func (h *Handler) route(kind export.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var code int
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			code = plain(w, http.StatusMethodNotAllowed, "the lists are read with GET")
		} else {
			code = h.serve(w, r, kind)
		}
		requests.WithLabelValues(string(kind), strconv.Itoa(code)).Inc()
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, kind export.Kind) int {
	req := export.Request{Kind: kind, Pool: r.PathValue("pool"), Namespace: r.PathValue("namespace")}
	resp, ok, err := h.Authenticator.AuthenticateRequest(r)
	if err != nil || !ok {
		if err != nil {
			h.Log.V(1).Info("export: authentication failed", "remote", r.RemoteAddr, "error", err.Error())
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="poolguard-export"`)
		msg := "authentication required: send a bearer token the API server accepts (Authorization: Bearer TOKEN, e.g. a ServiceAccount token) or a client certificate signed by the export CA (--export-client-ca-file)"
		if err != nil {
			msg = "not authenticated: " + err.Error() + "; send a bearer token the API server accepts or a client certificate signed by the export CA"
		}
		return plain(w, http.StatusUnauthorized, msg)
	}
	attrs := Attributes(resp.User, req)
	decision, _, err := h.Authorizer.Authorize(r.Context(), attrs)
	if err != nil {
		h.Log.Error(err, "export: authorization check failed", "user", resp.User.GetName())
		w.Header().Set("Retry-After", "5")
		return plain(w, http.StatusServiceUnavailable, "cannot check authorization with the API server now; try again")
	}
	if decision != authorizer.DecisionAllow {
		return plain(w, http.StatusForbidden, h.forbidden(attrs))
	}
	if err := export.ParseQuery(&req, r.URL.Query()); err != nil {
		return plain(w, http.StatusBadRequest, err.Error())
	}
	pools, err := h.Reader.Pools(r.Context())
	if err != nil {
		h.Log.Error(err, "export: reading pools")
		return plain(w, http.StatusInternalServerError, "cannot read the pools: "+err.Error())
	}
	var addrs []export.Address
	if kind != export.KindCIDRs {
		addrs, err = h.Reader.Addresses(r.Context(), req.Namespace, req.Pool)
		switch {
		case errors.Is(err, export.ErrAddressesUnknown):
			return plain(w, http.StatusNotImplemented, err.Error())
		case err != nil:
			h.Log.Error(err, "export: reading addresses")
			return plain(w, http.StatusInternalServerError, "cannot read the addresses in use: "+err.Error())
		}
	}
	list, err := export.Select(req, pools, addrs)
	if errors.Is(err, export.ErrUnknownPool) {
		return plain(w, http.StatusNotFound, err.Error()+": no IPPool of that name (kubectl get ippools)")
	} else if err != nil {
		return plain(w, http.StatusBadRequest, err.Error())
	}
	buf := bufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 4<<20 {
			buf.Reset()
			bufs.Put(buf)
		}
	}()
	if err := list.Render(buf); err != nil {
		h.Log.Error(err, "export: rendering")
		return plain(w, http.StatusInternalServerError, "cannot render the list: "+err.Error())
	}
	hdr := w.Header()
	hdr.Set("Content-Type", export.ContentType(req.Format))
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	// A list is current when it is read: no cache may keep it.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return http.StatusOK
}

// Attributes are what a caller must be allowed to get a list: verb get on
// exports/pools (name: the pool, none for every pool's CIDR) or
// exports/namespaces (name: the namespace) of group ipam.poolguard.dev,
// cluster-scoped.
func Attributes(u user.Info, req export.Request) authorizer.AttributesRecord {
	a := authorizer.AttributesRecord{
		User:            u,
		Verb:            Verb,
		APIGroup:        Group,
		APIVersion:      "v1",
		Resource:        Resource,
		Subresource:     SubresourcePools,
		Name:            req.Pool,
		ResourceRequest: true,
	}
	if req.Kind == export.KindNamespace {
		a.Subresource, a.Name = SubresourceNamespace, req.Namespace
	}
	return a
}

// forbidden says who may not do what, and what grants it.
func (h *Handler) forbidden(a authorizer.AttributesRecord) string {
	role := h.ReaderRole
	if role == "" {
		role = DefaultReaderRole
	}
	what := fmt.Sprintf("%s %s/%s", a.Verb, a.Resource, a.Subresource)
	if a.Name != "" {
		what += fmt.Sprintf(" %q", a.Name)
	} else {
		what += " (all)"
	}
	return fmt.Sprintf("forbidden: %s %q may not %s in API group %s: ask a cluster admin to bind the ClusterRole %s to it (kubectl create clusterrolebinding NAME --clusterrole=%s --serviceaccount=NS:NAME or --user=NAME), or a ClusterRole granting %s on %s/%s with resourceNames",
		kindOfUser(a.User.GetName()), a.User.GetName(), what, a.APIGroup, role, role, a.Verb, a.Resource, a.Subresource)
}

func kindOfUser(name string) string {
	if strings.HasPrefix(name, "system:serviceaccount:") {
		return "service account"
	}
	return "user"
}

// plain writes a plain-text error and returns its code.
func plain(w http.ResponseWriter, code int, msg string) int {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "poolguard export: %s\n", msg)
	return code
}
