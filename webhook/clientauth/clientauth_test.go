package clientauth_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"

	"poolguard.dev/poolguard/test/testpki"
	"poolguard.dev/poolguard/webhook/clientauth"
)

// server serves 200 on loopback over TLS with the client-auth option, as
// controller-runtime's webhook server would apply it.
type server struct {
	url      string
	serverCA *testpki.CA
}

func startServer(t *testing.T, cfg clientauth.Config) *server {
	t.Helper()
	serverCA := must(testpki.NewCA("serving-ca"))(t)
	pair := must(serverCA.Server("127.0.0.1"))(t)
	cert := must(pair.TLS())(t)
	opt, err := cfg.TLSOption()
	if err != nil {
		t.Fatal(err)
	}
	base := &tls.Config{NextProtos: []string{"h2"}}
	opt(base)
	// As controller-runtime does after the options: its certificate.
	base.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	l, err := tls.Listen("tcp", "127.0.0.1:0", base)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })} //nolint:gosec // test server
	// Handshake failures are what the test provokes: not worth a log line.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &server{url: "https://" + l.Addr().String() + "/", serverCA: serverCA}
}

// get calls the server with the given client certificate (none when nil)
// over a fresh connection, and returns the status or the transport error.
func (s *server) get(t *testing.T, client *testpki.Pair) (int, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(s.serverCA.CertPEM)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client != nil {
		// Sent whatever CAs the server names as acceptable: a forger
		// would not hold back a certificate the server does not trust.
		presented := must(client.TLS())(t)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &presented, nil }
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get(s.url)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func writeCA(t *testing.T, path string, pem []byte) {
	t.Helper()
	// Atomically, as the kubelet updates a ConfigMap volume.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestRequiresCertificateFromCA(t *testing.T) {
	apiCA := must(testpki.NewCA("apiserver-client-ca"))(t)
	otherCA := must(testpki.NewCA("someone-else"))(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writeCA(t, caFile, apiCA.CertPEM)
	s := startServer(t, clientauth.Config{CAFile: caFile, Log: testr.New(t)})

	apiserver := must(apiCA.Client("kube-apiserver"))(t)
	if code, err := s.get(t, &apiserver); err != nil || code != http.StatusOK {
		t.Fatalf("the API server's certificate: status %d, err %v; want 200", code, err)
	}
	if code, err := s.get(t, nil); err == nil {
		t.Fatalf("no client certificate: answered with %d, want a TLS refusal", code)
	}
	stranger := must(otherCA.Client("kube-apiserver"))(t)
	if code, err := s.get(t, &stranger); err == nil {
		t.Fatalf("certificate of another CA: answered with %d, want a TLS refusal", code)
	}
	// A serving certificate of the right CA is not a client certificate.
	serving := must(apiCA.Server("kube-apiserver"))(t)
	if code, err := s.get(t, &serving); err == nil {
		t.Fatalf("certificate without client-auth usage: answered with %d, want a TLS refusal", code)
	}
}

func TestAllowedNames(t *testing.T) {
	ca := must(testpki.NewCA("apiserver-client-ca"))(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writeCA(t, caFile, ca.CertPEM)
	s := startServer(t, clientauth.Config{CAFile: caFile, AllowedNames: []string{"kube-apiserver", "apiserver.example"}, Log: testr.New(t)})

	for name, pair := range map[string]testpki.Pair{
		"common name": must(ca.Client("kube-apiserver"))(t),
		"DNS SAN":     must(ca.Client("control-plane-1", "apiserver.example"))(t),
	} {
		if code, err := s.get(t, &pair); err != nil || code != http.StatusOK {
			t.Errorf("allowed by %s: status %d, err %v; want 200", name, code, err)
		}
	}
	other := must(ca.Client("system:node:worker-1", "worker-1.example"))(t)
	if code, err := s.get(t, &other); err == nil {
		t.Fatalf("a name not allowed: answered with %d, want a TLS refusal", code)
	}
}

// TestCAFileReloaded: a rotated CA bundle takes effect without a restart;
// a broken one keeps the previous bundle rather than refusing everyone.
func TestCAFileReloaded(t *testing.T) {
	oldCA := must(testpki.NewCA("old"))(t)
	newCA := must(testpki.NewCA("new"))(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	writeCA(t, caFile, oldCA.CertPEM)
	s := startServer(t, clientauth.Config{CAFile: caFile, Log: testr.New(t)})
	oldClient := must(oldCA.Client("kube-apiserver"))(t)
	newClient := must(newCA.Client("kube-apiserver"))(t)
	if _, err := s.get(t, &newClient); err == nil {
		t.Fatal("the new CA's client was accepted before the rotation")
	}

	writeCA(t, caFile, newCA.CertPEM)
	if code, err := s.get(t, &newClient); err != nil || code != http.StatusOK {
		t.Fatalf("after rotation, the new CA's client: status %d, err %v", code, err)
	}
	if _, err := s.get(t, &oldClient); err == nil {
		t.Fatal("after rotation, the old CA's client is still accepted")
	}

	writeCA(t, caFile, []byte("not a certificate"))
	if code, err := s.get(t, &newClient); err != nil || code != http.StatusOK {
		t.Fatalf("a broken CA file dropped the previous bundle: status %d, err %v", code, err)
	}
}

func TestStartupErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := (clientauth.Config{CAFile: filepath.Join(dir, "missing")}).TLSOption(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	writeCA(t, empty, nil)
	if _, err := (clientauth.Config{CAFile: empty}).TLSOption(); !errors.Is(err, clientauth.ErrNoCA) {
		t.Errorf("empty file: %v", err)
	}
}

func TestParseNames(t *testing.T) {
	if got := strings.Join(clientauth.ParseNames(" a, ,b,"), "|"); got != "a|b" {
		t.Errorf("ParseNames = %q", got)
	}
	if got := clientauth.ParseNames(""); got != nil {
		t.Errorf("ParseNames(\"\") = %v", got)
	}
}

// must unwraps (value, error) and fails the test on error.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
