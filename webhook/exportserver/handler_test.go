package exportserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"poolguard.dev/poolguard/allocator/export"
	"poolguard.dev/poolguard/webhook/exportserver"
)

// headerAuth authenticates the user named in X-Test-User.
type headerAuth struct{}

func (headerAuth) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	name := r.Header.Get("X-Test-User")
	if name == "" {
		return nil, false, nil
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: name}}, true, nil
}

// grants allows "user subresource/name" (name "" for the unnamed list).
type grants map[string]bool

func (g grants) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.GetVerb() != "get" || a.GetAPIGroup() != "ipam.poolguard.dev" || a.GetResource() != "exports" || a.GetNamespace() != "" {
		return authorizer.DecisionDeny, "", fmt.Errorf("unexpected attributes %+v", a)
	}
	if g[a.GetUser().GetName()+" "+a.GetSubresource()+"/"+a.GetName()] || g[a.GetUser().GetName()+" *"] {
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionDeny, "", nil
}

func staticReader() exportserver.Static {
	return exportserver.Static{
		PoolList: []export.Pool{
			{Name: "trusted", CIDR: netip.MustParsePrefix("203.0.113.0/25")},
			{Name: "v6", CIDR: netip.MustParsePrefix("2001:db8::/64")},
		},
		AddressList: []export.Address{
			{Address: netip.MustParseAddr("203.0.113.10"), Pool: "trusted", Namespace: "payments", Pod: "a"},
			{Address: netip.MustParseAddr("2001:db8::10"), Pool: "v6", Namespace: "payments", Pod: "a"},
			{Address: netip.MustParseAddr("203.0.113.11"), Pool: "trusted", Namespace: "shop", Pod: "b"},
		},
	}
}

// unknownAddresses is a reader of Calico mode: pools only.
type unknownAddresses struct{ exportserver.Static }

func (unknownAddresses) Addresses(context.Context, string, string) ([]export.Address, error) {
	return nil, fmt.Errorf("%w: Calico mode", export.ErrAddressesUnknown)
}

func get(h http.Handler, method, url, userName string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, url, nil)
	if userName != "" {
		r.Header.Set("X-Test-User", userName)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestHandler: every answer of the routes: who may read what, formats,
// and the errors a firewall's operator can act on.
func TestHandler(t *testing.T) {
	h := &exportserver.Handler{
		Reader:        staticReader(),
		Authenticator: headerAuth{},
		Authorizer: grants{
			"fw namespaces/payments": true, "fw namespaces/empty": true, "fw pools/trusted": true,
			"fw pools/nope": true, "fw namespaces/Bad_Name": true, "admin *": true,
		},
		ReaderRole: "pg-export-reader",
	}
	for _, tc := range []struct {
		method, url, user string
		code              int
		body              []string // substrings
		contentType       string
	}{
		{"GET", "/v1/namespaces/payments/addresses", "", 401, []string{"authentication required", "bearer token", "client certificate"}, "text/plain; charset=utf-8"},
		{"GET", "/v1/namespaces/payments/addresses", "fw", 200, []string{"203.0.113.10\n2001:db8::10\n"}, "text/plain; charset=utf-8"},
		{"GET", "/v1/namespaces/payments/addresses?family=4", "fw", 200, []string{"203.0.113.10\n"}, ""},
		{"GET", "/v1/namespaces/shop/addresses", "fw", 403, []string{`user "fw" may not get exports/namespaces "shop"`, "ClusterRole pg-export-reader", "resourceNames"}, "text/plain; charset=utf-8"},
		{"GET", "/v1/namespaces/empty/addresses", "fw", 200, nil, "text/plain; charset=utf-8"},
		{"GET", "/v1/namespaces/payments/addresses?format=json", "fw", 200, []string{`"addresses":[{"address":"203.0.113.10","pool":"trusted","namespace":"payments","pod":"a"}`}, "application/json"},
		{"GET", "/v1/namespaces/payments/addresses?format=nft&set=payments", "fw", 200, []string{"add set inet poolguard payments_v4 { type ipv4_addr; flags interval; auto-merge; }", "add element inet poolguard payments_v6 { 2001:db8::10 }"}, ""},
		{"GET", "/v1/namespaces/payments/addresses?format=nft&set=x%3B%20flush%20ruleset", "fw", 400, []string{`nft set "x; flush ruleset_v4"`}, ""},
		{"GET", "/v1/namespaces/payments/addresses?pool=v6", "fw", 200, []string{"2001:db8::10\n"}, ""},
		{"GET", "/v1/namespaces/payments/addresses?pool=nope", "fw", 404, []string{`unknown pool "nope"`}, ""},
		{"GET", "/v1/namespaces/Bad_Name/addresses", "fw", 400, []string{`namespace "Bad_Name"`}, ""},
		{"GET", "/v1/pools/trusted/addresses", "fw", 200, []string{"203.0.113.10\n203.0.113.11\n"}, ""},
		{"GET", "/v1/pools/trusted", "fw", 200, []string{"203.0.113.0/25\n"}, ""},
		{"GET", "/v1/pools", "fw", 403, []string{"get exports/pools (all)"}, ""},
		{"GET", "/v1/pools", "admin", 200, []string{"203.0.113.0/25\n2001:db8::/64\n"}, ""},
		{"GET", "/v1/pools/nope/addresses", "fw", 404, []string{`unknown pool "nope"`}, ""},
		{"GET", "/v1/pools/v6/addresses", "fw", 403, nil, ""},
		{"GET", "/v1/nothing", "fw", 404, []string{"no such export"}, ""},
		{"POST", "/v1/pools", "admin", 405, nil, ""},
		{"HEAD", "/v1/pools", "admin", 200, nil, ""},
	} {
		w := get(h, tc.method, tc.url, tc.user)
		body := w.Body.String()
		if w.Code != tc.code {
			t.Errorf("%s %s as %q: %d, want %d: %s", tc.method, tc.url, tc.user, w.Code, tc.code, body)
			continue
		}
		for _, s := range tc.body {
			if !strings.Contains(body, s) {
				t.Errorf("%s %s as %q: body %q lacks %q", tc.method, tc.url, tc.user, body, s)
			}
		}
		if tc.contentType != "" && w.Header().Get("Content-Type") != tc.contentType {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.url, w.Header().Get("Content-Type"), tc.contentType)
		}
		if tc.code == 401 && w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
		if tc.code == 200 && tc.method == "GET" && tc.url == "/v1/namespaces/empty/addresses" && body != "" {
			t.Errorf("empty namespace: body %q, want empty", body)
		}
	}
}

// TestCalicoModeAnswers501: without allocations the address lists say
// why, and the CIDRs are served.
func TestCalicoModeAnswers501(t *testing.T) {
	h := &exportserver.Handler{Reader: unknownAddresses{staticReader()}, Authenticator: headerAuth{}, Authorizer: grants{"admin *": true}}
	if w := get(h, "GET", "/v1/namespaces/payments/addresses", "admin"); w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), "Calico mode") {
		t.Errorf("namespace list: %d %q, want 501 saying why", w.Code, w.Body.String())
	}
	if w := get(h, "GET", "/v1/pools", "admin"); w.Code != http.StatusOK {
		t.Errorf("pools: %d", w.Code)
	}
}

// TestMetrics: answers are counted by list and code.
func TestMetrics(t *testing.T) {
	h := &exportserver.Handler{Reader: staticReader(), Authenticator: headerAuth{}, Authorizer: grants{}}
	count := func() float64 {
		mfs, err := metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "poolguard_export_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["list"] == "namespace" && labels["code"] == "401" {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	before := count()
	get(h, "GET", "/v1/namespaces/payments/addresses", "")
	if after := count(); after != before+1 {
		t.Errorf("401s of namespace lists %v -> %v, want one more", before, after)
	}
}

// TestCertificates: a verified client certificate's CN and O are the user
// and groups; a system: identity and an unverified certificate are not.
func TestCertificates(t *testing.T) {
	req := func(cn string, orgs ...string) *http.Request {
		r := httptest.NewRequest("GET", "/v1/pools", nil)
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: orgs}}
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
		return r
	}
	resp, ok, err := exportserver.Certificates{}.AuthenticateRequest(req("firewall-1", "firewalls"))
	if !ok || err != nil || resp.User.GetName() != "firewall-1" || strings.Join(resp.User.GetGroups(), ",") != "firewalls,system:authenticated" {
		t.Errorf("firewall-1: %+v %v %v", resp, ok, err)
	}
	for _, r := range []*http.Request{req("system:admin"), req("fw", "system:masters")} {
		if _, ok, err := (exportserver.Certificates{}).AuthenticateRequest(r); ok || !errors.Is(err, exportserver.ErrSystemIdentity) {
			t.Errorf("system identity: ok %v, error %v", ok, err)
		}
	}
	unverified := req("fw")
	unverified.TLS.VerifiedChains = nil
	if _, ok, _ := (exportserver.Certificates{}).AuthenticateRequest(unverified); ok {
		t.Error("an unverified certificate authenticated")
	}
}

// discard is a ResponseWriter that keeps only the byte count.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkExport: one namespace's list of 10,000 addresses (IPv4 and
// IPv6, two pools), through the handler with an in-memory reader and
// authorization that allows, in each format. Bytes/op is the body.
func BenchmarkExport(b *testing.B) {
	r := exportserver.Static{PoolList: []export.Pool{
		{Name: "bench", CIDR: netip.MustParsePrefix("198.18.0.0/15")},
		{Name: "bench6", CIDR: netip.MustParsePrefix("2001:db8::/64")},
	}}
	for i := range 10000 {
		a := export.Address{Address: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Pool: "bench", Namespace: "n", Pod: fmt.Sprintf("p-%d", i)}
		if i%2 == 1 {
			a.Address = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
			a.Pool = "bench6"
		}
		r.AddressList = append(r.AddressList, a)
	}
	h := &exportserver.Handler{Reader: r, Authenticator: headerAuth{}, Authorizer: grants{"fw *": true}}
	for _, format := range export.Formats {
		b.Run(string(format), func(b *testing.B) {
			req := httptest.NewRequest("GET", "/v1/namespaces/n/addresses?format="+string(format), nil)
			req.Header.Set("X-Test-User", "fw")
			w := &discard{h: http.Header{}}
			h.ServeHTTP(w, req)
			b.SetBytes(int64(w.n))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				w := &discard{h: http.Header{}}
				h.ServeHTTP(w, req)
			}
		})
	}
}
