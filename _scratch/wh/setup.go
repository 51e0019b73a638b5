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
	"poolguard.dev/poolguard/policy"
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

// Mode says whose IPPools admission checks against.
type Mode string

const (
	// ModeNative checks against poolguard's own IPPools; its allocator and
	// CNI plugin honour the frozen annotations.
	ModeNative Mode = "native"
	// ModeCalico checks against Calico's IPPools, where Calico's CNI and
	// IPAM allocate: the freeze pins the default pools too (policy.Rules).
	ModeCalico Mode = "calico"
)

// ParseMode parses the --mode flag.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeNative, ModeCalico:
		return Mode(s), nil
	}
	return "", fmt.Errorf("mode %q: must be %q or %q", s, ModeNative, ModeCalico)
}

// Options configure the admission handlers.
type Options struct {
	// Mode is ModeNative (default) or ModeCalico.
	Mode Mode
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
	nsMeta := &metav1.PartialObjectMetadata{}
	nsMeta.SetGroupVersionKind(namespaceGVK)
	if _, err := mgr.GetCache().GetInformer(ctx, nsMeta); err != nil {
		return fmt.Errorf("namespace informer: %w", err)
	}
	lookup := Lookup{Cache: mgr.GetCache(), Live: mgr.GetAPIReader()}
	// Every pod validation reads the pools: keep their index built between
	// IPPool changes rather than rebuilding it per request.
	pools, err := poolSource(ctx, mgr, o.Mode)
	if err != nil {
		return err
	}
	enforcer := Enforcer{Mode: o.Enforcement, Events: &Events{Recorder: mgr.GetEventRecorder("poolguard-webhook")}}

	srv := mgr.GetWebhookServer()
	rules := policy.Rules{PinDefaults: o.Mode == ModeCalico}
	for path, h := range HandlersWith(mgr.GetScheme(), lookup, pools, enforcer, rules) {
		if o.Mode == ModeCalico && (path == PathMutateIPPool || path == PathValidateIPPool) {
			// Calico's IPPools are Calico's to validate.
			continue
		}
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
// typed defaulters and validators over poolguard's policy, the pod
// handlers through handlers that decode only the pod's view and patch
// only what the freeze wrote (see freezeHandler, validateHandler). Setup
// serves them; the fuzz target feeds them raw bytes.
func Handlers(scheme *runtime.Scheme, lookup Lookup, source source.Source, enforcer Enforcer) map[string]*admission.Webhook {
	return HandlersWith(scheme, lookup, source, enforcer, policy.Rules{})
}

// HandlersWith is Handlers under a mode's freeze rules (Calico mode pins
// the default pools).
func HandlersWith(scheme *runtime.Scheme, lookup Lookup, source source.Source, enforcer Enforcer, rules policy.Rules) map[string]*admission.Webhook {
	return map[string]*admission.Webhook{
		PathMutatePod:              newFreezeWebhook(&PodFreezer{Lookup: lookup, Pools: source, Rules: rules}),
		PathValidatePodSubresource: (&admission.Webhook{Handler: PodSubresourceValidator{Enforcer: enforcer}}).WithRecoverPanic(true),
		PathValidatePod:            newValidateWebhook(&PodValidator{Enforcer: enforcer, Lookup: lookup, Pools: source, Rules: rules}),
		PathValidateNamespace:      admission.WithValidator[*corev1.Namespace](scheme, &NamespaceValidator{Enforcer: enforcer, Pools: source}).WithRecoverPanic(true),
		PathMutateIPPool:           admission.WithDefaulter[*v1alpha1.IPPool](scheme, IPPoolDefaulter{}).WithRecoverPanic(true),
		PathValidateIPPool:         admission.WithValidator[*v1alpha1.IPPool](scheme, IPPoolValidator{Pools: source}).WithRecoverPanic(true),
	}
}

// poolSource serves the mode's IPPools from an informer. In Calico mode
// discovery decides which of Calico's two groups is read, and the log and
// readiness say which.
func poolSource(ctx context.Context, mgr manager.Manager, mode Mode) (source.Source, error) {
	src, gv, err := source.FromManager(ctx, mgr, mode == ModeCalico)
	if err != nil || mode != ModeCalico {
		return src, err
	}
	mgr.GetLogger().WithName("setup").Info("Calico mode: admission reads Calico's IPPools", "groupVersion", gv.String())
	// Readiness names the group read, so `kubectl get --raw /readyz?verbose`
	// on the pod's probe port says which one.
	if err := mgr.AddReadyzCheck("calico-ippools-"+gv.Group, func(*http.Request) error { return nil }); err != nil {
		return nil, err
	}
	return src, nil
}
