package clientauth_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/testpki"
	"poolguard.dev/poolguard/webhook"
)

// TestOnlyTheAPIServerIsAnswered runs the webhook behind a real
// kube-apiserver that presents a client certificate (its
// AdmissionConfiguration), and checks that admission works through the API
// server while a hand-made AdmissionReview POSTed straight to the webhook's
// port is refused at the TLS handshake: without a certificate, with one of
// another CA, and with one of the right CA but a name not allowed.
func TestOnlyTheAPIServerIsAnswered(t *testing.T) {
	ctx := context.Background()
	apiCA := must(testpki.NewCA("apiserver-client-ca"))(t)
	apiserver := must(apiCA.Client("kube-apiserver"))(t)
	env, err := harness.Start(harness.Options{Webhook: true, ClientAuth: &harness.ClientAuth{
		CAPEM: apiCA.CertPEM, CertPEM: apiserver.CertPEM, KeyPEM: apiserver.KeyPEM,
		AllowedNames: []string{"kube-apiserver"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})

	t.Run("pods are frozen through the API server", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "client-auth"}}
		if err := env.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "app"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatalf("pod create through the API server: %v", err)
		}
		if _, ok := p.Annotations[policy.AnnotationProvenance]; !ok {
			t.Fatalf("pod not frozen: %v", p.Annotations)
		}
	})

	otherCA := must(testpki.NewCA("someone-else"))(t)
	forged := must(otherCA.Client("kube-apiserver"))(t)
	wrongName := must(apiCA.Client("system:node:worker-1"))(t)
	for name, cert := range map[string]*testpki.Pair{
		"no client certificate":                nil,
		"a certificate of another CA":          &forged,
		"a certificate of the CA, not allowed": &wrongName,
	} {
		t.Run("raw review with "+name+" is refused", func(t *testing.T) {
			if code, err := postReview(t, env, cert); err == nil {
				t.Fatalf("answered with HTTP %d; want the TLS handshake refused", code)
			} else {
				t.Logf("refused: %v", err)
			}
		})
	}
	t.Run("raw review with the API server's certificate is answered", func(t *testing.T) {
		// The same request, so the refusals above are not a malformed one.
		if code, err := postReview(t, env, &apiserver); err != nil || code != http.StatusOK {
			t.Fatalf("status %d, err %v; want 200", code, err)
		}
	})
}

// TestWithoutClientAuthAnyoneIsAnswered is the control: the same raw
// review, without a client certificate, gets an answer from a webhook that
// does not require one. That is the hole TestOnlyTheAPIServerIsAnswered
// shows closed.
func TestWithoutClientAuthAnyoneIsAnswered(t *testing.T) {
	env, err := harness.Start(harness.Options{Webhook: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	if code, err := postReview(t, env, nil); err != nil || code != http.StatusOK {
		t.Fatalf("status %d, err %v; want the forged review answered with 200", code, err)
	}
}

// postReview POSTs a hand-made AdmissionReview of a pod CREATE straight to
// the webhook's mutating pod path, trusting the webhook's serving CA and
// presenting cert (none when nil), over a fresh connection. It returns the
// HTTP status, or the error when no HTTP answer came.
func postReview(t *testing.T, env *harness.Env, cert *testpki.Pair) (int, error) {
	t.Helper()
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "forged"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("forged-1"),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "default", Name: "forged", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(env.Env.WebhookInstallOptions.LocalServingCAData)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Sent whatever CAs the server names as acceptable: a forger
		// would not hold back a certificate the server does not trust.
		presented := must(cert.TLS())(t)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &presented, nil }
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Post("https://"+env.WebhookAddr+webhook.PathMutatePod, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Response == nil || answer.Response.UID != review.Request.UID {
		t.Fatalf("HTTP %d but no AdmissionReview answer for the request (err %v): %+v", resp.StatusCode, err, answer)
	}
	return resp.StatusCode, nil
}
