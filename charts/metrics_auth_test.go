package charts_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testMetricsAuth scrapes the webhook process's metrics port as the chart
// installed it: HTTPS with the serving certificate (verified against the
// webhook's CA under the Service's DNS name, as a scraper can), refusing an
// anonymous caller (401) and a service account not bound to the chart's
// metrics-reader ClusterRole (403), and serving a bound one (200, with
// poolguard's admission counter). The webhook process asks the API server
// (TokenReview, SubjectAccessReview) under the chart's RBAC.
func testMetricsAuth(ctx context.Context, t *testing.T, c *cluster, port int, caPEM []byte) {
	prometheus, stranger := c.readerTokens(ctx, t, "monitoring", "prometheus", installRelease+"-metrics-reader")
	// The webhook caches a denial for 30s: ask first until the API
	// server's authorizer has seen the binding.
	waitAllowed(ctx, t, c, "system:serviceaccount:monitoring:prometheus")

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: installSvc + "." + installNS + ".svc", MinVersion: tls.VersionTLS12,
	}}}
	defer hc.CloseIdleConnections()
	scrape := func(token string) (int, string) {
		t.Helper()
		return bearerGet(ctx, t, hc, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), token)
	}

	if code, body := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("anonymous scrape: HTTP %d, want 401\n%.300s", code, body)
	}
	// controller-runtime's filter answers 500, not 401, when the
	// TokenReview carries an error (as it does for a malformed token).
	if code, body := scrape("not-a-token"); code != http.StatusUnauthorized && code != http.StatusInternalServerError || strings.Contains(body, "poolguard_") {
		t.Errorf("scrape with a bogus token: HTTP %d, want 401 or 500 and no metrics\n%.300s", code, body)
	}
	if code, body := scrape(stranger); code != http.StatusForbidden {
		t.Errorf("scrape by a service account without the metrics-reader role: HTTP %d, want 403\n%.300s", code, body)
	}
	code, body := scrape(prometheus)
	if code != http.StatusOK || !strings.Contains(body, "poolguard_admission_decisions_total") {
		t.Fatalf("scrape by the metrics reader: HTTP %d, want 200 with poolguard_admission_decisions_total\n%.500s", code, body)
	}
	// Plain HTTP gets no metrics.
	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("metrics served over plain HTTP")
		}
	}
}

// waitAllowed waits until the API server's authorizer lets user get
// /metrics, for at most 10s.
func waitAllowed(ctx context.Context, t *testing.T, c *cluster, user string) {
	t.Helper()
	for start := time.Now(); ; {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:serviceaccounts", "system:authenticated"},
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
		}}
		must(t, c.admin.Create(ctx, sar))
		if sar.Status.Allowed {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s may still not get /metrics 10s after the binding to the chart's metrics-reader: %+v", user, sar.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

// readerTokens creates namespace ns with the ServiceAccounts reader and
// stranger, binds reader to the ClusterRole role, and returns a token of
// each: one the role allows, one nothing does.
func (c *cluster) readerTokens(ctx context.Context, t *testing.T, ns, reader, role string) (allowed, stranger string) {
	t.Helper()
	must(t, c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	token := func(sa string) string {
		t.Helper()
		acct := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}
		must(t, c.admin.Create(ctx, acct))
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}
		must(t, c.admin.SubResource("token").Create(ctx, acct, tr))
		return tr.Status.Token
	}
	allowed, stranger = token(reader), token("stranger")
	must(t, c.admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: reader + "-" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: reader}},
	}))
	return allowed, stranger
}

// bearerGet GETs url with hc (which verifies the webhook's certificate),
// with the bearer token if any, and returns the status and body.
func bearerGet(ctx context.Context, t *testing.T, hc *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	must(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s over HTTPS, verifying the webhook's certificate: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, string(b)
}
