package exportserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	kubestorev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/testpki"
	"poolguard.dev/poolguard/webhook"
	"poolguard.dev/poolguard/webhook/exportserver"
)

// TestExportOnTheControlPlane runs the export as poolguard-webhook does
// (a manager's caches, the chart's export-reader ClusterRole, TokenReview
// and SubjectAccessReview against a real kube-apiserver, the serving
// certificate and a client CA from files) and calls it over real TLS as
// firewalls would: without credentials, with tokens of service accounts
// without and with RBAC, restricted to one namespace by resourceNames,
// with client certificates of the export CA and of another; and follows
// IPAMClaims created and deleted, a claim being deleted (held by a
// finalizer) dropping out at once.
func TestExportOnTheControlPlane(t *testing.T) {
	env, err := harness.Start(harness.Options{})
	if err != nil {
		t.Fatalf("the local control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := harness.Client(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(env.Config)

	// PKI: the serving certificate (as cert-manager writes it into
	// --cert-dir), the export CA that signs firewalls' certificates, and a
	// stranger's CA.
	servingCA, err := testpki.NewCA("serving-ca")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := servingCA.Server("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	exportCA, err := testpki.NewCA("export-ca")
	if err != nil {
		t.Fatal(err)
	}
	strangerCA, err := testpki.NewCA("stranger-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"tls.crt": serving.CertPEM, "tls.key": serving.KeyPEM, "export-ca.crt": exportCA.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The world: pools, namespaces, and the claims of running pods.
	for _, p := range []v1alpha1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "trusted"}, Spec: v1alpha1.IPPoolSpec{CIDR: "203.0.113.0/25"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "general"}, Spec: v1alpha1.IPPoolSpec{CIDR: "198.51.100.0/25"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: v1alpha1.IPPoolSpec{CIDR: "2001:db8::/64"}},
	} {
		mustCreate(t, c, &p)
	}
	for _, ns := range []string{"payments", "web", "firewalls"} {
		mustCreate(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	mustCreate(t, c, claim("a", "payments", "203.0.113.10", "2001:db8::10"))
	mustCreate(t, c, claim("w", "web", "198.51.100.5"))

	// RBAC: the chart's export-reader ClusterRole, and one namespace's
	// list only, as the chart's README shows.
	reader := chartRole(t, "poolguard-export-reader")
	mustCreate(t, c, reader)
	mustCreate(t, c, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "export-payments"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"ipam.poolguard.dev"}, Resources: []string{"exports/namespaces"}, ResourceNames: []string{"payments"}, Verbs: []string{"get"}}},
	})
	tokens := map[string]string{}
	for _, sa := range []string{"nobody", "reader", "payments-fw"} {
		mustCreate(t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "firewalls", Name: sa}})
		tr, err := cs.CoreV1().ServiceAccounts("firewalls").CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tokens[sa] = tr.Status.Token
	}
	bind(t, c, reader.Name, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "firewalls", Name: "reader"})
	bind(t, c, reader.Name, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "fw-cert"})
	bind(t, c, "export-payments", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "firewalls", Name: "payments-fw"})

	// The export, as poolguard-webhook runs it.
	addr := freePort(t)
	harness.StartManager(t, env.Config, logr.Discard(), func(mgr manager.Manager) error {
		return exportserver.Setup(mgr, exportserver.Options{
			BindAddress: addr, CertDir: dir, ClientCAFile: filepath.Join(dir, "export-ca.crt"),
			Mode: webhook.ModeNative, Addresses: true, ReaderRole: reader.Name,
		})
	})

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(servingCA.CertPEM)
	newClient := func(cert *testpki.Pair) *http.Client {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			kp, err := cert.TLS()
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	plainClient := newClient(nil)
	type answer struct {
		code int
		body string
		err  error
	}
	call := func(hc *http.Client, token, path string) answer {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return answer{code: resp.StatusCode, body: string(b), err: err}
	}
	// expect polls until the answer is the one wanted: RBAC bindings and
	// claims reach the authorizer and the cache within moments; nothing
	// else about timing is asserted.
	expect := func(what string, hc *http.Client, token, path string, code int, body string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			a := call(hc, token, path)
			if a.err == nil && a.code == code && (body == "*" || a.body == body || (code != 200 && strings.Contains(a.body, body))) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: GET %s: %d %q (error %v), want %d %q", what, path, a.code, a.body, a.err, code, body)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The server is up once it answers at all.
	expect("no credentials", plainClient, "", "/v1/namespaces/payments/addresses", http.StatusUnauthorized, "authentication required")
	expect("a token without RBAC", plainClient, tokens["nobody"], "/v1/namespaces/payments/addresses", http.StatusForbidden,
		`service account "system:serviceaccount:firewalls:nobody" may not get exports/namespaces "payments"`)
	expect("a token that is no token", plainClient, "not-a-token", "/v1/pools", http.StatusUnauthorized, "not authenticated")

	r := tokens["reader"]
	expect("reader: a namespace", plainClient, r, "/v1/namespaces/payments/addresses", 200, "203.0.113.10\n2001:db8::10\n")
	expect("reader: the CIDRs", plainClient, r, "/v1/pools", 200, "198.51.100.0/25\n203.0.113.0/25\n2001:db8::/64\n")
	expect("reader: a pool", plainClient, r, "/v1/pools/general/addresses", 200, "198.51.100.5\n")
	expect("reader: an empty namespace", plainClient, r, "/v1/namespaces/empty/addresses", 200, "")
	expect("reader: an unknown pool", plainClient, r, "/v1/pools/nope/addresses", 404, `unknown pool "nope"`)
	expect("reader: nft", plainClient, r, "/v1/namespaces/payments/addresses?format=nft&family=4&set=payments", 200,
		"#!/usr/sbin/nft -f\n# poolguard export: the addresses of the pods of namespace payments, IPv4 only\nadd table inet poolguard\n"+
			"add set inet poolguard payments_v4 { type ipv4_addr; flags interval; auto-merge; }\nflush set inet poolguard payments_v4\n"+
			"add element inet poolguard payments_v4 { 203.0.113.10 }\n")

	p := tokens["payments-fw"]
	expect("one namespace's firewall: its namespace", plainClient, p, "/v1/namespaces/payments/addresses?family=6", 200, "2001:db8::10\n")
	expect("one namespace's firewall: another namespace", plainClient, p, "/v1/namespaces/web/addresses", 403, `may not get exports/namespaces "web"`)
	expect("one namespace's firewall: the pools", plainClient, p, "/v1/pools", 403, "get exports/pools (all)")

	fwCert, err := exportCA.ClientInGroups("fw-cert", "firewalls")
	if err != nil {
		t.Fatal(err)
	}
	expect("a certificate of the export CA", newClient(&fwCert), "", "/v1/namespaces/payments/addresses?family=4", 200, "203.0.113.10\n")
	otherCert, err := exportCA.Client("fw-other")
	if err != nil {
		t.Fatal(err)
	}
	expect("a certificate of the export CA without RBAC", newClient(&otherCert), "", "/v1/pools", 403, `user "fw-other" may not`)
	strangerCert, err := strangerCA.ClientInGroups("fw-cert", "firewalls")
	if err != nil {
		t.Fatal(err)
	}
	// Go's client offers no certificate the server's CA list does not
	// name: then it is a caller without credentials.
	expect("a certificate of another CA, not offered", newClient(&strangerCert), "", "/v1/pools", 401, "authentication required")
	// Offered anyway (as curl does): the handshake fails.
	forced := newClient(nil)
	kp, err := strangerCert.TLS()
	if err != nil {
		t.Fatal(err)
	}
	forced.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	if a := call(forced, "", "/v1/pools"); a.err == nil {
		t.Errorf("a certificate of another CA: %d %q, want the handshake refused", a.code, a.body)
	} else {
		t.Logf("a certificate of another CA: %v", a.err)
	}

	// Pods start and stop: the lists follow.
	mustCreate(t, c, claim("b", "payments", "203.0.113.12"))
	expect("a new pod", plainClient, r, "/v1/namespaces/payments/addresses?family=4", 200, "203.0.113.10\n203.0.113.12\n")
	if err := c.Delete(ctx, claim("a", "payments")); err != nil {
		t.Fatal(err)
	}
	expect("a pod gone", plainClient, r, "/v1/namespaces/payments/addresses", 200, "203.0.113.12\n")
	held := claim("h", "payments", "203.0.113.13")
	held.Finalizers = []string{"test.poolguard.dev/hold"}
	mustCreate(t, c, held)
	expect("a held claim", plainClient, r, "/v1/namespaces/payments/addresses", 200, "203.0.113.12\n203.0.113.13\n")
	if err := c.Delete(ctx, held); err != nil {
		t.Fatal(err)
	}
	expect("a claim being deleted", plainClient, r, "/v1/namespaces/payments/addresses", 200, "203.0.113.12\n")
	var still kubestorev1alpha1.IPAMClaim
	if err := c.Get(ctx, client.ObjectKeyFromObject(held), &still); err != nil || still.DeletionTimestamp == nil {
		t.Errorf("the held claim should still exist, being deleted: %v %v", err, still.DeletionTimestamp)
	}
	still.Finalizers = nil
	if err := c.Update(ctx, &still); err != nil {
		t.Error(err)
	}
}

// claim is an IPAMClaim of a pod of namespace holding addresses (pool
// from the address).
func claim(name, namespace string, addrs ...string) *kubestorev1alpha1.IPAMClaim {
	cl := &kubestorev1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "claim-" + name},
		Spec: kubestorev1alpha1.IPAMClaimSpec{
			ContainerID: "c-" + name, IfName: "eth0", Node: "node-1",
			Pod: kubestorev1alpha1.PodReference{Namespace: namespace, Name: "pod-" + name},
		},
	}
	for _, a := range addrs {
		pool, cidr, block := "trusted", "203.0.113.0/25", "203.0.113.0/26"
		switch {
		case strings.HasPrefix(a, "198.51.100."):
			pool, cidr, block = "general", "198.51.100.0/25", "198.51.100.0/26"
		case strings.Contains(a, ":"):
			pool, cidr, block = "v6", "2001:db8::/64", "2001:db8::/122"
		}
		cl.Spec.Addresses = append(cl.Spec.Addresses, kubestorev1alpha1.ClaimAddress{Pool: pool, PoolCIDR: cidr, Block: block, Address: a, Seq: 1})
	}
	return cl
}

func mustCreate(t *testing.T, c client.Client, o client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), o); err != nil {
		t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
}

func bind(t *testing.T, c client.Client, role string, s rbacv1.Subject) {
	t.Helper()
	mustCreate(t, c, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role + "-" + strings.ToLower(s.Kind) + "-" + s.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{s},
	})
}

// chartRole renders the chart (release poolguard) and returns a
// ClusterRole of it.
func chartRole(t *testing.T, name string) *rbacv1.ClusterRole {
	t.Helper()
	role, err := charts.Helm{}.ClusterRole(charts.Release{Name: "poolguard", Namespace: "poolguard-system"}, name)
	if err != nil {
		t.Fatal(err)
	}
	return role
}

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}
