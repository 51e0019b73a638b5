// Package clientauth lets only the API server make the webhook act: the
// webhook's TLS server requires a client certificate signed by a configured
// CA, and optionally one carrying an allowed name.
//
// Without it anyone who can reach the webhook's port can POST a hand-made
// AdmissionReview: the webhook cannot tell a forged review from a genuine
// one, so it would record events and metrics for it and answer it. The API
// server presents a client certificate to webhooks when its
// AdmissionConfiguration (--admission-control-config-file) points the
// ValidatingAdmissionWebhook and MutatingAdmissionWebhook plugins at a
// kubeconfig whose users are keyed by the webhook's service DNS name
// (e.g. "poolguard-webhook.poolguard-system.svc", "*.svc") or, for URL
// webhooks, host:port; see Kubernetes' "Authenticate apiservers".
//
// The CA file is re-read when it changes (checked at each TLS handshake:
// at once when the file was replaced or its size or modification time
// changed, and at least every recheck interval in case a same-size rewrite
// kept both), so a ConfigMap volume the kubelet updates takes effect
// without a restart; connections already established keep the identity
// they were verified with.
package clientauth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Errors of this package, wrapped with the file or name they concern.
var (
	// ErrNoCA means the CA file held no PEM certificate.
	ErrNoCA = errors.New("no PEM certificate in the client CA file")
	// ErrNoClientCertificate means the caller presented no certificate.
	ErrNoClientCertificate = errors.New("no client certificate")
	// ErrNameNotAllowed means the client certificate was signed by the CA
	// but carries none of the allowed names.
	ErrNameNotAllowed = errors.New("client certificate name not allowed")
)

// Config says whom the webhook accepts.
type Config struct {
	// CAFile is a PEM bundle of the CAs that sign accepted client
	// certificates.
	CAFile string
	// AllowedNames, when not empty, are the names one of which the client
	// certificate must carry, as its subject common name or a DNS, URI or
	// e-mail subject alternative name. Empty: any certificate the CA
	// signed.
	AllowedNames []string
	// Log receives CA reloads and failed reloads.
	Log logr.Logger
	// Optional lets callers without a certificate through the handshake
	// (a certificate that is presented must still verify against the CA,
	// and carry an allowed name), for a server that also accepts other
	// credentials and authenticates per request: the export port, where
	// a firewall presents a certificate or a bearer token.
	Optional bool
}

// TLSOption returns an option for controller-runtime's webhook server
// (webhook.Options.TLSOpts) that requires and verifies client
// certificates. It reads the CA file at once, so a wrong path or an empty
// bundle fails at startup rather than at the first admission.
func (c Config) TLSOption() (func(*tls.Config), error) {
	cas := &caFile{path: c.CAFile, log: c.Log}
	if err := cas.load(); err != nil {
		return nil, err
	}
	allowed := slices.Clone(c.AllowedNames)
	clientAuth := tls.RequireAndVerifyClientCert
	if c.Optional {
		clientAuth = tls.VerifyClientCertIfGiven
	}
	return func(base *tls.Config) {
		// Per handshake, a copy of the server's final config (controller-
		// runtime sets its certificate watcher after the options run) with
		// the current CA pool: Go's own chain verification, against a pool
		// that follows the file.
		base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := base.Clone()
			cfg.GetConfigForClient = nil
			cfg.ClientAuth = clientAuth
			cfg.ClientCAs = cas.pool()
			if len(allowed) > 0 {
				cfg.VerifyConnection = func(cs tls.ConnectionState) error {
					if clientAuth == tls.VerifyClientCertIfGiven && len(cs.PeerCertificates) == 0 {
						return nil
					}
					return checkName(cs, allowed)
				}
			}
			return cfg, nil
		}
	}, nil
}

// ParseNames splits a comma-separated flag value into names, dropping
// blanks.
func ParseNames(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// checkName accepts a verified peer whose leaf certificate carries one of
// the allowed names.
func checkName(cs tls.ConnectionState, allowed []string) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoClientCertificate
	}
	leaf := cs.PeerCertificates[0]
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	names = append(names, leaf.EmailAddresses...)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	for _, n := range names {
		if n != "" && slices.Contains(allowed, n) {
			return nil
		}
	}
	return fmt.Errorf("%w: %q (names %v)", ErrNameNotAllowed, leaf.Subject.CommonName, names[1:])
}

// caFile is a CA bundle that follows its file.
type caFile struct {
	path string
	log  logr.Logger

	mu      sync.Mutex
	current *x509.CertPool
	raw     []byte
	// seen is the file as last read, and read when.
	seen os.FileInfo
	read time.Time
}

// recheck bounds how long a rewrite that kept the file's identity, size
// and modification time (within the filesystem's timestamp resolution) can
// go unnoticed.
const recheck = time.Second

// unchanged tells cheaply whether the file is probably the one last read.
func unchanged(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// load reads the file and replaces the pool when its content changed.
func (f *caFile) load() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("client CA file: %w", err)
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return fmt.Errorf("client CA file: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen, f.read = fi, time.Now()
	if f.current != nil && bytes.Equal(b, f.raw) {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%w: %s", ErrNoCA, f.path)
	}
	reloaded := f.current != nil
	f.current, f.raw = pool, b
	if reloaded {
		f.log.Info("reloaded the client CA bundle", "file", f.path)
	}
	return nil
}

// pool returns the current pool, reloading it first when the file may
// have changed. A file that cannot be read or parsed (e.g. caught
// mid-update) keeps the previous pool: refusing every caller would take
// admission down.
func (f *caFile) pool() *x509.CertPool {
	fi, err := os.Stat(f.path)
	f.mu.Lock()
	changed := err == nil && (!unchanged(f.seen, fi) || time.Since(f.read) > recheck)
	f.mu.Unlock()
	if changed {
		if err := f.load(); err != nil {
			f.log.Error(err, "keeping the previous client CA bundle")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}
