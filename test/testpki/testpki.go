// Package testpki issues throwaway CAs and certificates for tests: serving
// certificates, and the client certificates with which the API server (or a
// stranger) calls the webhook.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is a certificate authority living for one test.
type CA struct {
	// CertPEM is the CA's certificate, for trust bundles.
	CertPEM []byte
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// Pair is an issued certificate and its key, PEM encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// TLS returns the pair as a tls.Certificate.
func (p Pair) TLS() (tls.Certificate, error) { return tls.X509KeyPair(p.CertPEM, p.KeyPEM) }

// NewCA creates a CA named cn, valid for a day.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{CertPEM: encode("CERTIFICATE", der), cert: cert, key: key}, nil
}

// Client issues a client certificate with common name cn and DNS SANs.
func (ca *CA) Client(cn string, dnsNames ...string) (Pair, error) {
	return ca.issue(cn, dnsNames, nil, x509.ExtKeyUsageClientAuth)
}

// Server issues a serving certificate for hosts (DNS names or IPs).
func (ca *CA) Server(hosts ...string) (Pair, error) {
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return ca.issue(hosts[0], dns, ips, x509.ExtKeyUsageServerAuth)
}

// ClientInGroups issues a client certificate for user cn in the groups
// (the subject's organizations), as the API server reads a kubelet's or a
// controller's identity from its certificate.
func (ca *CA) ClientInGroups(cn string, groups ...string) (Pair, error) {
	return ca.issueSubject(pkix.Name{CommonName: cn, Organization: groups}, nil, nil, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) issue(cn string, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (Pair, error) {
	return ca.issueSubject(pkix.Name{CommonName: cn}, dns, ips, usage)
}

func (ca *CA) issueSubject(subject pkix.Name, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (Pair, error) {
	cn := subject.CommonName
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: subject, DNSNames: dns, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return Pair{}, fmt.Errorf("issuing %s: %w", cn, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{CertPEM: encode("CERTIFICATE", der), KeyPEM: encode("EC PRIVATE KEY", keyDER)}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func encode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
