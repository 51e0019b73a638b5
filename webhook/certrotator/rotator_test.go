package certrotator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

const (
	ns      = "pg-system"
	secret  = "pg-webhook-tls"
	service = "pg-webhook"
	config  = "pg"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func setup(t *testing.T) (client.Client, *clock) {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	hooks := func(n int) []admissionregistrationv1.ValidatingWebhook {
		out := make([]admissionregistrationv1.ValidatingWebhook, n)
		for i := range out {
			out[i].Name = "w" + string(rune('a'+i)) + ".example"
		}
		return out
	}
	m := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: config},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "m1.example"}, {Name: "m2.example"}}}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: config}, Webhooks: hooks(3)}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(m, v).Build()
	return c, &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
}

func rotator(c client.Client, clk *clock, dir string) *Rotator {
	return &Rotator{Client: c, Namespace: ns, SecretName: secret, ServiceName: service, WebhookConfigurationName: config,
		CertDir: dir, CAValidity: 100 * 24 * time.Hour, CertValidity: 30 * 24 * time.Hour, Now: clk.now}
}

func getSecret(t *testing.T, c client.Client) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: secret}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// verify checks that the files form a pair the injected bundle trusts for
// the Service's name, at clock time.
func verify(t *testing.T, c client.Client, dir string, at time.Time) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, KeyCert), filepath.Join(dir, KeyKey))
	if err != nil {
		t.Fatalf("certificate files do not load: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(context.Background(), client.ObjectKey{Name: config}, &v); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Name: config}, &m); err != nil {
		t.Fatal(err)
	}
	bundles := [][]byte{m.Webhooks[0].ClientConfig.CABundle, m.Webhooks[1].ClientConfig.CABundle}
	for _, w := range v.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	for i, b := range bundles {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			t.Fatalf("webhook %d has no caBundle", i)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: service + "." + ns + ".svc", CurrentTime: at}); err != nil {
			t.Fatalf("webhook %d's caBundle does not trust the served certificate: %v", i, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	return leaf
}

// TestBootstrapAndSteadyState: the first round creates everything; later
// rounds with nothing due write nothing.
func TestBootstrapAndSteadyState(t *testing.T) {
	ctx := context.Background()
	c, clk := setup(t)
	dir := t.TempDir()
	r := rotator(c, clk, dir)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	leaf := verify(t, c, dir, clk.now())
	rv := getSecret(t, c).ResourceVersion
	clk.add(24 * time.Hour)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got := getSecret(t, c).ResourceVersion; got != rv {
		t.Fatalf("Secret rewritten with nothing due (resourceVersion %s -> %s): GitOps and the API server would see churn", rv, got)
	}
	if again := verify(t, c, dir, clk.now()); !again.Equal(leaf) {
		t.Fatalf("serving certificate changed with nothing due")
	}
}

// TestRenewals: the serving certificate is renewed under the same CA once a
// third of its life is left; the CA with a fifth left, the old CA staying in
// the bundle while valid. At every step the files verify against every
// caBundle.
func TestRenewals(t *testing.T) {
	ctx := context.Background()
	c, clk := setup(t)
	dir := t.TempDir()
	r := rotator(c, clk, dir)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := verify(t, c, dir, clk.now())
	ca1 := getSecret(t, c).Data[KeyCA]

	clk.add(21 * 24 * time.Hour) // 9 of 30 days left: due
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if second := verify(t, c, dir, clk.now()); second.Equal(first) {
		t.Fatal("serving certificate not renewed with less than a third of its life left")
	}
	if string(getSecret(t, c).Data[KeyCA]) != string(ca1) {
		t.Fatal("CA replaced although only the serving certificate was due")
	}

	clk.add(60 * 24 * time.Hour) // 81 of 100 CA days gone: CA due
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	verify(t, c, dir, clk.now())
	s := getSecret(t, c)
	if string(s.Data[KeyCA]) == string(ca1) {
		t.Fatal("CA not renewed with less than a fifth of its life left")
	}
	if certs := parseCerts(s.Data[KeyCABundle]); len(certs) != 2 {
		t.Fatalf("bundle during CA rollover has %d CAs, want the new and the old", len(certs))
	}
	// A replica still serving a certificate of the old CA stays trusted.
	if old := parseCerts(ca1)[0]; !parseCerts(s.Data[KeyCABundle])[1].Equal(old) {
		t.Fatal("old CA dropped from the bundle during rollover")
	}

	clk.add(30 * 24 * time.Hour) // the old CA has expired
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	verify(t, c, dir, clk.now())
	if certs := parseCerts(getSecret(t, c).Data[KeyCABundle]); len(certs) != 1 {
		t.Fatalf("expired CA still in the bundle: %d CAs", len(certs))
	}
}

// TestReplicasConverge: replicas bootstrapping at once end with one Secret
// and the same files.
func TestReplicasConverge(t *testing.T) {
	ctx := context.Background()
	c, clk := setup(t)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var wg sync.WaitGroup
	errs := make([]error, len(dirs))
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rotator(c, clk, d).Ensure(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	// A second round settles any replica that lost a race after writing.
	for _, d := range dirs {
		if err := rotator(c, clk, d).Ensure(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := getSecret(t, c).Data[KeyCert]
	for i, d := range dirs {
		got, err := os.ReadFile(filepath.Join(d, KeyCert))
		if err != nil || string(got) != string(want) {
			t.Fatalf("replica %d serves a certificate other than the Secret's (%v)", i, err)
		}
		verify(t, c, d, clk.now())
	}
}

// TestRepairsCorruptSecretAndLostBundle: a damaged Secret is reissued, and
// a caBundle wiped by a re-apply of the configurations is restored.
func TestRepairsCorruptSecretAndLostBundle(t *testing.T) {
	ctx := context.Background()
	c, clk := setup(t)
	dir := t.TempDir()
	r := rotator(c, clk, dir)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s := getSecret(t, c)
	s.Data[KeyKey] = []byte("garbage")
	if err := c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: config}, &v); err != nil {
		t.Fatal(err)
	}
	v.Webhooks[1].ClientConfig.CABundle = nil
	if err := c.Update(ctx, &v); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	verify(t, c, dir, clk.now())
}

func TestValidate(t *testing.T) {
	if err := (&Rotator{}).Validate(); err == nil {
		t.Fatal("empty rotator validated")
	}
}
