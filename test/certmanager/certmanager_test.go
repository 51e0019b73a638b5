package certmanager_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/test/certmanager"
)

const (
	namespace   = "pg-system"
	selfSigned  = "pg-selfsigned"
	caName      = "pg-ca" // the CA Certificate, its Secret and the CA Issuer
	servingName = "serving-cert"
	servingTLS  = "serving-tls"
)

var dnsNames = []string{"pg-webhook." + namespace + ".svc", "pg-webhook." + namespace + ".svc.cluster.local"}

// TestChartChain runs cert-manager's controllers and CA injector against a
// real kube-apiserver and etcd and gives them the objects poolguard's chart
// creates in its default certificates mode: a self-signed Issuer that
// bootstraps a CA Certificate, a CA Issuer over the CA's Secret, a serving
// Certificate it signs, and webhook configurations asking for the serving
// Certificate's CA. All are created at once, as helm does.
func TestChartChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startAPIServer(t)
	// Twice: installing over installed CRDs updates them, as an upgrade.
	for range 2 {
		if err := certmanager.InstallCRDs(ctx, c.cfg); err != nil {
			t.Fatal(err)
		}
	}
	stop, err := certmanager.Start(ctx, c.cfg, certmanager.Options{Logger: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("cert-manager: %v", err)
		}
	})

	for _, obj := range chartObjects() {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
	}

	waitIssued(ctx, t, c, servingName, 1)
	var caSecret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: caName}, &caSecret); err != nil {
		t.Fatal(err)
	}
	ca := parseCert(t, "CA tls.crt", caSecret.Data[corev1.TLSCertKey])
	if !ca.IsCA || ca.Subject.CommonName != caName || !bytes.Equal(ca.RawIssuer, ca.RawSubject) {
		t.Errorf("CA certificate: isCA %v, subject %q, issuer %q; want a self-signed CA %q", ca.IsCA, ca.Subject, ca.Issuer, caName)
	}
	first := verifyServing(ctx, t, c, ca)

	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		waitFor(ctx, t, kind+" caBundle is the CA's certificate", func() (bool, error) {
			bundles, err := caBundles(ctx, c, kind)
			if err != nil {
				return false, err
			}
			for _, b := range bundles {
				if !bytes.Equal(b, caSecret.Data[corev1.TLSCertKey]) {
					return false, fmt.Errorf("caBundle %.40q…", b)
				}
			}
			return true, nil
		})
	}

	// cert-manager reissues a Certificate whose Secret is gone.
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: servingTLS}}); err != nil {
		t.Fatal(err)
	}
	waitIssued(ctx, t, c, servingName, 2)
	second := verifyServing(ctx, t, c, ca)
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Errorf("the reissued certificate has the old serial %v", first.SerialNumber)
	}
	if bytes.Equal(first.RawSubjectPublicKeyInfo, second.RawSubjectPublicKeyInfo) {
		t.Error("the reissued certificate has the old key; the chart asks for rotationPolicy Always")
	}
	// Reissuing the leaf keeps the CA, so the injected caBundle stands.
	bundles, err := caBundles(ctx, c, "ValidatingWebhookConfiguration")
	if err != nil || len(bundles) != 1 || !bytes.Equal(bundles[0], caSecret.Data[corev1.TLSCertKey]) {
		t.Errorf("after reissue, caBundles %q (%v), want the CA's certificate", bundles, err)
	}
}

// chartObjects are the chart's cert-manager objects and annotated webhook
// configurations (charts/poolguard/templates/certmanager.yaml), with short
// names.
func chartObjects() []client.Object {
	issuerRef := func(name string) cmmeta.IssuerReference {
		return cmmeta.IssuerReference{Group: "cert-manager.io", Kind: "Issuer", Name: name}
	}
	key := &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmapi.RotationPolicyAlways}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: namespace, Name: name} }
	inject := metav1.ObjectMeta{
		Name:        "pg-webhook",
		Annotations: map[string]string{"cert-manager.io/inject-ca-from": namespace + "/" + servingName},
	}
	// A webhook that never matches: the API server never calls it, and
	// would ignore it failing.
	clientConfig := admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
		Namespace: namespace, Name: "pg-webhook", Path: ptr.To("/validate"), Port: ptr.To[int32](443),
	}}
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"nothing.poolguard.test"}, APIVersions: []string{"v1"}, Resources: []string{"nothings"},
		},
	}}
	return []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&cmapi.Issuer{ObjectMeta: meta(selfSigned), Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{
			SelfSigned: &cmapi.SelfSignedIssuer{},
		}}},
		&cmapi.Certificate{ObjectMeta: meta(caName), Spec: cmapi.CertificateSpec{
			IsCA: true, CommonName: caName, SecretName: caName,
			Duration: &metav1.Duration{Duration: 43800 * time.Hour}, PrivateKey: key, IssuerRef: issuerRef(selfSigned),
		}},
		&cmapi.Issuer{ObjectMeta: meta(caName), Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{
			CA: &cmapi.CAIssuer{SecretName: caName},
		}}},
		&cmapi.Certificate{ObjectMeta: meta(servingName), Spec: cmapi.CertificateSpec{
			SecretName: servingTLS, DNSNames: dnsNames,
			Duration:    &metav1.Duration{Duration: 2160 * time.Hour},
			RenewBefore: &metav1.Duration{Duration: 720 * time.Hour},
			Usages:      []cmapi.KeyUsage{cmapi.UsageServerAuth, cmapi.UsageDigitalSignature},
			PrivateKey:  key, IssuerRef: issuerRef(caName),
		}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: inject, Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validate.poolguard.test", ClientConfig: clientConfig, Rules: rules,
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore), SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: inject, Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "mutate.poolguard.test", ClientConfig: clientConfig, Rules: rules,
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore), SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}}},
	}
}

// verifyServing checks the serving Secret's certificate chains to ca for
// every DNS name, for server authentication, and that the Secret's ca.crt
// is ca; it returns the certificate.
func verifyServing(ctx context.Context, t *testing.T, c *cluster, ca *x509.Certificate) *x509.Certificate {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: servingTLS}, &s); err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, "serving tls.crt", s.Data[corev1.TLSCertKey])
	if got := parseCert(t, "serving ca.crt", s.Data["ca.crt"]); !got.Equal(ca) {
		t.Errorf("serving Secret's ca.crt is %q, not the CA", got.Subject)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range dnsNames {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if leaf.IsCA {
		t.Error("the serving certificate is a CA")
	}
	return leaf
}

// caBundles returns the caBundle of each webhook of the kind's
// configuration.
func caBundles(ctx context.Context, c *cluster, kind string) ([][]byte, error) {
	var bundles [][]byte
	key := client.ObjectKey{Name: "pg-webhook"}
	switch kind {
	case "ValidatingWebhookConfiguration":
		var w admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, key, &w); err != nil {
			return nil, err
		}
		for _, h := range w.Webhooks {
			bundles = append(bundles, h.ClientConfig.CABundle)
		}
	default:
		var w admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, key, &w); err != nil {
			return nil, err
		}
		for _, h := range w.Webhooks {
			bundles = append(bundles, h.ClientConfig.CABundle)
		}
	}
	return bundles, nil
}

// waitIssued waits until the Certificate name is Ready at the revision.
// cert-manager's readiness controller may mark it Ready from its new
// Secret before the issuing controller has recorded the revision, so both
// are waited for.
func waitIssued(ctx context.Context, t *testing.T, c *cluster, name string, revision int) {
	t.Helper()
	waitFor(ctx, t, fmt.Sprintf("Certificate %s Ready at revision %d", name, revision), func() (bool, error) {
		var crt cmapi.Certificate
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &crt); err != nil {
			return false, err
		}
		if crt.Status.Revision != nil && *crt.Status.Revision > revision {
			return false, fmt.Errorf("revision %d, past %d", *crt.Status.Revision, revision)
		}
		return isReady(&crt) && crt.Status.Revision != nil && *crt.Status.Revision == revision, nil
	})
}

func isReady(crt *cmapi.Certificate) bool {
	for _, cond := range crt.Status.Conditions {
		if cond.Type == cmapi.CertificateConditionReady {
			return cond.Status == cmmeta.ConditionTrue
		}
	}
	return false
}

// waitFor polls cond until it holds, failing the test with its last error
// once ctx's deadline or a minute passes.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil && !apierrors.IsNotFound(err) {
			last = err
		} else if err != nil {
			last = errors.New("not found yet")
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func parseCert(t *testing.T, what string, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate in %q", what, b)
	}
	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return crt
}

// cluster is a kube-apiserver and etcd, and an admin client of it.
type cluster struct {
	client.Client
	cfg *rest.Config
}

// startAPIServer starts a kube-apiserver and etcd from the repository's
// bin/ (make tools), or from KUBEBUILDER_ASSETS if set, stopped on cleanup.
func startAPIServer(t *testing.T) *cluster {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "bin")
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		bin = dir
	}
	env := &envtest.Environment{BinaryAssetsDirectory: bin}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", bin, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	scheme := kruntime.NewScheme()
	for _, add := range []func(*kruntime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{Client: c, cfg: cfg}
}
