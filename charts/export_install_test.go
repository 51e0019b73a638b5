package charts_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testExportInstalled calls the webhook process's live export as the
// chart installed it: HTTPS with the serving certificate under the
// Service's name, 401 without credentials, 403 for a service account the
// chart's export-reader ClusterRole is not bound to, and the lists for
// one it is bound to. The process reads IPAMClaims and asks the API
// server (TokenReview, SubjectAccessReview) under the chart's RBAC.
func testExportInstalled(ctx context.Context, t *testing.T, c *cluster, port int, caPEM []byte, pool, cidr string) {
	reader, stranger := c.readerTokens(ctx, t, "firewalls", "pan-fw", installRelease+"-export-reader")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: installSvc + "." + installNS + ".svc", MinVersion: tls.VersionTLS12,
	}}}
	defer hc.CloseIdleConnections()
	get := func(token, path string) (int, string) {
		t.Helper()
		return bearerGet(ctx, t, hc, fmt.Sprintf("https://127.0.0.1:%d%s", port, path), token)
	}
	if code, body := get("", "/v1/pools"); code != http.StatusUnauthorized {
		t.Errorf("no credentials: HTTP %d, want 401\n%s", code, body)
	}
	if code, body := get(stranger, "/v1/pools"); code != http.StatusForbidden || !strings.Contains(body, installRelease+"-export-reader") {
		t.Errorf("a service account without the binding: HTTP %d, want 403 naming the ClusterRole\n%s", code, body)
	}
	// The binding reaches the API server's authorizer within moments; a
	// refusal is cached 5s.
	var code int
	var body string
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(200 * time.Millisecond) {
		if code, body = get(reader, "/v1/pools/"+pool); code == http.StatusOK {
			break
		}
	}
	if code != http.StatusOK || body != cidr+"\n" {
		t.Errorf("bound to the export-reader: HTTP %d %q, want 200 %q", code, body, cidr+"\n")
	}
	// The address lists need the claims informer (the chart's RBAC).
	if code, body := get(reader, "/v1/namespaces/nobody-here/addresses?format=json"); code != http.StatusOK || strings.TrimSpace(body) != `{"kind":"namespace","namespace":"nobody-here","addresses":[]}` {
		t.Errorf("an empty namespace's list: HTTP %d %q", code, body)
	}
}
