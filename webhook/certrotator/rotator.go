package certrotator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// Keys of the Secret. tls.crt, tls.key and ca.crt are what cert-manager
// writes too, so the webhook's certificate directory looks the same either
// way; the CA's key and the bundle are the rotator's own.
const (
	KeyCert     = corev1.TLSCertKey
	KeyKey      = corev1.TLSPrivateKeyKey
	KeyCA       = "ca.crt"
	KeyCAKey    = "ca.key"
	KeyCABundle = "ca-bundle.crt"
)

// Renewal thresholds: the serving certificate is renewed with a third of its
// life left, the CA with a fifth, so neither ever expires under a replica
// that checks at every Interval.
const (
	renewServingFraction = 3
	renewCAFraction      = 5
)

// Rotator keeps the webhook's certificates. It is a manager.Runnable that
// every replica runs (it does not need leader election).
type Rotator struct {
	// Client reads and writes the Secret and the webhook configurations. It
	// must not be a cached client: Ensure runs before the manager starts.
	Client client.Client
	// Namespace and SecretName locate the Secret.
	Namespace, SecretName string
	// ServiceName is the webhook's Service; the certificate names
	// <service>.<namespace>.svc and its cluster.local form.
	ServiceName string
	// WebhookConfigurationName names the MutatingWebhookConfiguration and
	// ValidatingWebhookConfiguration whose caBundles are kept.
	WebhookConfigurationName string
	// CertDir receives tls.crt, tls.key and ca.crt.
	CertDir string
	// CAValidity and CertValidity are the lifetimes of new certificates.
	CAValidity, CertValidity time.Duration
	// Interval between checks; one minute when zero.
	Interval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// DNSNames are the names the serving certificate is issued for.
func (r *Rotator) DNSNames() []string {
	svc := r.ServiceName + "." + r.Namespace + ".svc"
	return []string{svc, svc + ".cluster.local"}
}

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Start re-runs Ensure every Interval until ctx ends. A failed round is
// logged and retried at the next: the certificate in use stays valid for a
// third of its life after renewal became due.
func (r *Rotator) Start(ctx context.Context) error {
	interval := r.Interval
	if interval == 0 {
		interval = time.Minute
	}
	log := logf.FromContext(ctx).WithName("certrotator")
	// Ensure ran when the rotator was set up; the first round here repeats
	// it at once, which writes nothing that is current.
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := r.Ensure(ctx); err != nil {
			log.Error(err, "keeping the webhook certificate", "secret", r.Namespace+"/"+r.SecretName)
		}
	}, interval)
	return nil
}

// NeedLeaderElection is false: every replica writes its own files.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Ensure brings the Secret, the certificate files and the caBundles up to
// date, in the order that never breaks trust: the Secret first (one replica
// wins a race, the others adopt its result), then the caBundles, then the
// files this replica serves.
func (r *Rotator) Ensure(ctx context.Context) error {
	var data map[string][]byte
	var err error
	for attempt := 0; ; attempt++ {
		data, err = r.ensureSecret(ctx)
		if err == nil {
			break
		}
		if attempt < 5 && (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) {
			continue // another replica wrote first: start over from its Secret
		}
		return err
	}
	for attempt := 0; ; attempt++ {
		err = r.inject(ctx, data[KeyCABundle])
		if err == nil {
			break
		}
		if attempt < 5 && apierrors.IsConflict(err) {
			continue // another replica injected meanwhile: check again
		}
		return err
	}
	return r.writeFiles(data)
}

// ensureSecret returns the Secret's data after creating or renewing what
// is missing or due.
func (r *Rotator) ensureSecret(ctx context.Context) (map[string][]byte, error) {
	now := r.now()
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}, sec)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", r.Namespace, r.SecretName, err)
	}
	old := sec.Data
	ca, caErr := parseKeyPair(old[KeyCA], old[KeyCAKey])
	renewCA := caErr != nil || due(ca.cert, now, renewCAFraction)
	if renewCA {
		if ca, err = newCA(r.ServiceName+"."+r.Namespace+"-ca", now, r.CAValidity); err != nil {
			return nil, err
		}
	}
	serving, servingErr := parseKeyPair(old[KeyCert], old[KeyKey])
	if servingErr == nil {
		servingErr = servingValid(serving, ca, r.DNSNames(), now)
	}
	if servingErr != nil {
		if serving, err = newServing(ca, r.DNSNames(), now, r.CertValidity); err != nil {
			return nil, err
		}
	}
	data := map[string][]byte{
		KeyCA: ca.certPEM, KeyCAKey: ca.keyPEM,
		KeyCert: serving.certPEM, KeyKey: serving.keyPEM,
		KeyCABundle: bundle(ca, old[KeyCABundle], now),
	}
	if exists && sameData(old, data) {
		return data, nil
	}
	sec.Data = data
	if !exists {
		sec.ObjectMeta = metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "poolguard-webhook",
		}}
		sec.Type = corev1.SecretTypeOpaque
		return data, r.Client.Create(ctx, sec)
	}
	// Update carries the resourceVersion read above: of two replicas
	// renewing at once, one gets a conflict and adopts the other's result.
	return data, r.Client.Update(ctx, sec)
}

func sameData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if !bytes.Equal(a[k], v) {
			return false
		}
	}
	return true
}

// inject sets caBundle on every webhook of both configurations that lacks
// it, as cert-manager's CA injector would. It re-runs every round, so a
// caBundle lost to a tool that re-applies the configurations is restored.
func (r *Rotator) inject(ctx context.Context, caBundle []byte) error {
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := r.Client.Get(ctx, client.ObjectKey{Name: r.WebhookConfigurationName}, &m); err != nil {
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", r.WebhookConfigurationName, err)
	}
	changed := false
	for i := range m.Webhooks {
		if !bytes.Equal(m.Webhooks[i].ClientConfig.CABundle, caBundle) {
			m.Webhooks[i].ClientConfig.CABundle, changed = caBundle, true
		}
	}
	if changed {
		if err := r.Client.Update(ctx, &m); err != nil {
			return fmt.Errorf("injecting the CA into MutatingWebhookConfiguration %s: %w", m.Name, err)
		}
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := r.Client.Get(ctx, client.ObjectKey{Name: r.WebhookConfigurationName}, &v); err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", r.WebhookConfigurationName, err)
	}
	changed = false
	for i := range v.Webhooks {
		if !bytes.Equal(v.Webhooks[i].ClientConfig.CABundle, caBundle) {
			v.Webhooks[i].ClientConfig.CABundle, changed = caBundle, true
		}
	}
	if changed {
		if err := r.Client.Update(ctx, &v); err != nil {
			return fmt.Errorf("injecting the CA into ValidatingWebhookConfiguration %s: %w", v.Name, err)
		}
	}
	return nil
}

// writeFiles writes the files that differ, each atomically (temporary file,
// then rename), the key before the certificate: the certificate watcher
// reloads on either, and a pair read mid-way fails to load and leaves the
// previous certificate in service until the second file lands.
func (r *Rotator) writeFiles(data map[string][]byte) error {
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return err
	}
	for _, k := range []string{KeyCA, KeyKey, KeyCert} {
		path := filepath.Join(r.CertDir, k)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data[k]) {
			continue
		}
		if err := renameio.WriteFile(path, data[k], 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// ErrNotConfigured is returned by Validate for missing settings.
var ErrNotConfigured = errors.New("certificate rotator not configured")

// Validate checks that every setting Ensure needs is present.
func (r *Rotator) Validate() error {
	switch {
	case r.Client == nil, r.Namespace == "", r.SecretName == "", r.ServiceName == "", r.WebhookConfigurationName == "", r.CertDir == "":
		return fmt.Errorf("%w: need a client, namespace (POD_NAMESPACE), secret, service, webhook configuration name and certificate directory", ErrNotConfigured)
	case r.CAValidity <= 0 || r.CertValidity <= 0:
		return fmt.Errorf("%w: validities must be positive", ErrNotConfigured)
	}
	return nil
}
