package charts_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/testpki"
	"poolguard.dev/poolguard/webhook"
)

// TestWebhookBinaryRequiresAPIServerCertificate runs poolguard-webhook with
// the args the chart renders for webhook.clientAuth (the harness's CA file
// standing in for the mounted ConfigMap) behind a kube-apiserver whose
// AdmissionConfiguration makes it present a client certificate: pods are
// frozen through the API server, and a caller without the certificate is
// refused at the TLS handshake.
func TestWebhookBinaryRequiresAPIServerCertificate(t *testing.T) {
	ctx := context.Background()
	apiCA, err := testpki.NewCA("apiserver-client-ca")
	must(t, err)
	apiserver, err := apiCA.Client("kube-apiserver")
	must(t, err)
	env, err := harness.Start(harness.Options{ExternalWebhook: true, ClientAuth: &harness.ClientAuth{
		CAPEM: apiCA.CertPEM, CertPEM: apiserver.CertPEM, KeyPEM: apiserver.KeyPEM,
	}})
	must(t, err)
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})

	_, port, err := net.SplitHostPort(env.WebhookAddr)
	must(t, err)
	dep := deployment(t, render(t, "webhook.port="+port,
		fmt.Sprintf("webhook.metricsPort=%d", freePort(t)), fmt.Sprintf("webhook.healthPort=%d", freePort(t)),
		fmt.Sprintf("export.port=%d", freePort(t)),
		"webhook.clientAuth.caConfigMap=apiserver-client-ca", "webhook.clientAuth.allowedNames={kube-apiserver}",
		"webhook.logging.encoder=console"))
	ctr := &dep.Spec.Template.Spec.Containers[0]
	found := false
	for i, a := range ctr.Args {
		if strings.HasPrefix(a, "--client-ca-file=/client-ca/") {
			ctr.Args[i], found = "--client-ca-file="+env.ClientCAFile, true
		}
	}
	if !found {
		t.Fatalf("the chart passes no --client-ca-file from the mounted ConfigMap: %v", ctr.Args)
	}
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: dep.Namespace}}))
	user, err := env.Env.AddUser(envtest.User{Name: "poolguard-webhook", Groups: []string{"system:masters"}}, nil)
	must(t, err)
	kc, err := user.KubeConfig()
	must(t, err)
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(kcPath, kc, 0o600))
	runWebhook(t, buildWebhook(t), dep, kcPath, env.CertDir)

	t.Run("pods are frozen through the API server", func(t *testing.T) {
		must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "client-auth"}}))
		p := testPod("client-auth", "app")
		must(t, env.Client.Create(ctx, p))
		if _, ok := p.Annotations[policy.AnnotationProvenance]; !ok {
			t.Fatalf("pod not frozen: %v", p.Annotations)
		}
	})
	t.Run("a caller without the certificate is refused", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(env.Env.WebhookInstallOptions.LocalServingCAData)
		post := func(cert *tls.Certificate) (*http.Response, error) {
			cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
			return c.Post("https://"+env.WebhookAddr+webhook.PathMutatePod, "application/json", strings.NewReader(`{}`))
		}
		if resp, err := post(nil); err == nil {
			_ = resp.Body.Close()
			t.Fatalf("answered HTTP %d without a client certificate; want the handshake refused", resp.StatusCode)
		}
		// The same call with the API server's certificate gets an HTTP
		// answer: the refusal above is the certificate's doing.
		cert, err := apiserver.TLS()
		must(t, err)
		resp, err := post(&cert)
		if err != nil {
			t.Fatalf("with the API server's certificate: %v", err)
		}
		_ = resp.Body.Close()
	})
}
