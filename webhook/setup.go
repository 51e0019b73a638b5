package webhook

import (
	"context"
	"errors"
	"fmt"
	corev1 "k8s.io/api/core/v1"
	"net/http"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/pools/source"
)

// NewScheme returns the scheme of every type the webhook reads.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Options configure the admission handlers.
type Options struct {
	// Enforcement is Enforce (default) or Warn.
	Enforcement Enforcement
	// ExcludedNamespaces are the namespaces the webhook configurations
	// leave out (ConfigOptions.ExcludedNamespaces): the API server never
	// sends requests about them, so one that arrives is not genuine and
	// records no event and no metric.
	ExcludedNamespaces []string
}

// Setup registers poolguard's admission handlers on the manager's webhook
// server, starts the informers they read, and ties readiness to both.
func Setup(mgr manager.Manager, o Options) error {
	if o.Enforcement == "" {
		o.Enforcement = Enforce
	}
	ctx := context.Background()
	// Ask for the informers now so they start and sync with the manager:
	// admission reads only from them.
	poolInformer, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.IPPool{})
	if err != nil {
		return fmt.Errorf("IPPool informer: %w", err)
	}
	nsMeta := &metav1.PartialObjectMetadata{}
	nsMeta.SetGroupVersionKind(namespaceGVK)
	if _, err := mgr.GetCache().GetInformer(ctx, nsMeta); err != nil {
		return fmt.Errorf("namespace informer: %w", err)
	}

	lookup := Lookup{Cache: mgr.GetCache(), Live: mgr.GetAPIReader()}
	// Every pod validation reads the pools: keep their index built between
	// IPPool changes rather than rebuilding it per request.
	source, err := source.NewCached(poolInformer, mgr.GetCache())
	if err != nil {
		return err
	}
	enforcer := Enforcer{Mode: o.Enforcement, Events: &Events{Recorder: mgr.GetEventRecorder("poolguard-webhook")}}

	srv := mgr.GetWebhookServer()
	for path, h := range Handlers(mgr.GetScheme(), lookup, source, enforcer) {
		srv.Register(path, Screened(h, o.ExcludedNamespaces))
	}

	if err := mgr.AddReadyzCheck("webhook-server", srv.StartedChecker()); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("informers", cacheSynced(mgr)); err != nil {
		return err
	}
	return mgr.AddHealthzCheck("ping", func(*http.Request) error { return nil })
}

// cacheSynced is ready once the informers admission reads from are synced:
// before that, every pool would read as unknown.
func cacheSynced(mgr manager.Manager) func(*http.Request) error {
	return func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced")
		}
		return nil
	}
}

// Screened puts the webhook's handler behind screen, in place, so that
// requests about excluded namespaces (which the API server never sends)
// record no event and no metric.
func Screened(w *admission.Webhook, excluded []string) *admission.Webhook {
	set := make(map[string]bool, len(excluded))
	for _, ns := range excluded {
		set[ns] = true
	}
	w.Handler = screen{excluded: set, next: w.Handler}
	return w
}

// Handlers returns every admission handler by path: controller-runtime's
// typed defaulters and validators over poolguard's policy (the pod freeze
// through a handler that patches only what it wrote, see freezeHandler). Setup serves them;
// the fuzz target feeds them raw bytes.
func Handlers(scheme *runtime.Scheme, lookup Lookup, source source.Source, enforcer Enforcer) map[string]*admission.Webhook {
	return map[string]*admission.Webhook{
		PathMutatePod:              newFreezeWebhook(scheme, &PodFreezer{Lookup: lookup, Pools: source}),
		PathValidatePodSubresource: (&admission.Webhook{Handler: PodSubresourceValidator{Enforcer: enforcer}}).WithRecoverPanic(true),
		PathValidatePod:            admission.WithValidator[*corev1.Pod](scheme, &PodValidator{Enforcer: enforcer, Lookup: lookup, Pools: source}).WithRecoverPanic(true),
		PathValidateNamespace:      admission.WithValidator[*corev1.Namespace](scheme, &NamespaceValidator{Enforcer: enforcer, Pools: source}).WithRecoverPanic(true),
		PathMutateIPPool:           admission.WithDefaulter[*v1alpha1.IPPool](scheme, IPPoolDefaulter{}).WithRecoverPanic(true),
		PathValidateIPPool:         admission.WithValidator[*v1alpha1.IPPool](scheme, IPPoolValidator{Pools: source}).WithRecoverPanic(true),
	}
}
