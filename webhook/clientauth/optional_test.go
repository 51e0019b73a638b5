package clientauth_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr/testr"

	"poolguard.dev/poolguard/test/testpki"
	"poolguard.dev/poolguard/webhook/clientauth"
)

// TestOptional: with Optional (the export port, where a firewall sends a
// bearer token or a certificate), a caller without a certificate gets
// through the handshake, one of the CA gets through, one of another CA
// (or, with AllowedNames, a name not allowed) is refused at the
// handshake, and a rotated CA file still takes effect.
func TestOptional(t *testing.T) {
	ca := must(testpki.NewCA("export-ca"))(t)
	otherCA := must(testpki.NewCA("someone-else"))(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writeCA(t, caFile, ca.CertPEM)
	s := startServer(t, clientauth.Config{CAFile: caFile, Optional: true, Log: testr.New(t)})

	if code, err := s.get(t, nil); err != nil || code != http.StatusOK {
		t.Errorf("no client certificate: status %d, err %v; want through", code, err)
	}
	fw := must(ca.Client("firewall-1"))(t)
	if code, err := s.get(t, &fw); err != nil || code != http.StatusOK {
		t.Errorf("a certificate of the CA: status %d, err %v; want 200", code, err)
	}
	stranger := must(otherCA.Client("firewall-1"))(t)
	if code, err := s.get(t, &stranger); err == nil {
		t.Errorf("a certificate of another CA: answered with %d, want a TLS refusal", code)
	}
	writeCA(t, caFile, otherCA.CertPEM)
	if code, err := s.get(t, &stranger); err != nil || code != http.StatusOK {
		t.Errorf("after the CA file names the other CA: status %d, err %v; want 200", code, err)
	}

	named := startServer(t, clientauth.Config{CAFile: caFile, Optional: true, AllowedNames: []string{"firewall-1"}, Log: testr.New(t)})
	if code, err := named.get(t, nil); err != nil || code != http.StatusOK {
		t.Errorf("allowed names, no certificate: status %d, err %v; want through", code, err)
	}
	other := must(otherCA.Client("firewall-2"))(t)
	if code, err := named.get(t, &other); err == nil {
		t.Errorf("allowed names, a name not allowed: answered with %d, want a TLS refusal", code)
	}
}
