package poolseed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"poolguard.dev/poolguard/api/v1alpha1"
)

// FieldManager is the field manager of the pools poolguard applies from
// values: `kubectl get ippool -o yaml --show-managed-fields` shows it.
const FieldManager = "poolguard-ippool-seed"

// Event reasons on the ConfigMap.
const (
	// ReasonApplied: a pool from values was created or changed.
	ReasonApplied = "IPPoolApplied"
	// ReasonRefused: a pool from values could not be applied; retried.
	ReasonRefused = "IPPoolRefused"
)

// Backoff bounds between attempts while a pool is refused.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 2 * time.Minute
)

// Seeder applies the pools of one ConfigMap. It runs on the elected
// replica only, and reads the ConfigMap from an informer of its own that
// watches that single object, so its RBAC is get/list/watch on one name.
type Seeder struct {
	// Client applies IPPools.
	Client client.Client
	// Cache holds the one ConfigMap (see New).
	Cache cache.Cache
	// Recorder records Events on the ConfigMap.
	Recorder recorder.EventRecorder
	// Namespace and Name of the ConfigMap.
	Namespace, Name string
	// Ready reports nil once this replica's webhook serves and its
	// informers are synced: before that, every apply would fail or, worse,
	// be judged against an empty pool cache by another replica's webhook.
	Ready func() error
	// Log is where refusals and applies are logged.
	Log logr.Logger
}

var _ manager.LeaderElectionRunnable = (*Seeder)(nil)

// Setup adds a Seeder for ConfigMap namespace/name to the manager, ready
// with the manager's readiness checks.
func Setup(mgr manager.Manager, namespace, name string) error {
	if namespace == "" || name == "" {
		return errors.New("IPPools from a ConfigMap need its namespace (POD_NAMESPACE) and name")
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Field: fields.OneTermEqualSelector("metadata.name", name)},
		},
	})
	if err != nil {
		return fmt.Errorf("IPPool seed cache: %w", err)
	}
	webhookServing := mgr.GetWebhookServer().StartedChecker()
	return mgr.Add(&Seeder{
		Client:    mgr.GetClient(),
		Cache:     c,
		Recorder:  mgr.GetEventRecorder("poolguard-webhook"),
		Namespace: namespace,
		Name:      name,
		Log:       mgr.GetLogger().WithName("ippool-seed"),
		Ready: func() error {
			if err := webhookServing(&http.Request{}); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if !mgr.GetCache().WaitForCacheSync(ctx) {
				return errors.New("informer caches not synced")
			}
			return nil
		},
	})
}

// NeedLeaderElection: one replica applies, so that replicas do not race
// each other's retries and Events.
func (*Seeder) NeedLeaderElection() bool { return true }

// Start applies the pools when this replica is ready, again whenever the
// ConfigMap changes, and again with backoff while any is refused.
func (s *Seeder) Start(ctx context.Context) error {
	go func() {
		if err := s.Cache.Start(ctx); err != nil {
			s.Log.Error(err, "ConfigMap informer stopped")
		}
	}()
	// Not blocking on sync: without the RBAC to watch the ConfigMap the
	// informer retries (and logs why) rather than failing the manager, and
	// admission goes on.
	inf, err := s.Cache.GetInformer(ctx, &corev1.ConfigMap{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return err
	}
	if !s.waitReady(ctx) || !s.Cache.WaitForCacheSync(ctx) {
		return nil // stopping
	}
	backoff := time.Duration(0)
	for {
		var retry <-chan time.Time
		if err := s.apply(ctx); err != nil {
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			s.Log.Error(err, "IPPools from values not all applied; retrying", "configMap", s.Namespace+"/"+s.Name, "in", backoff)
			retry = time.After(backoff)
		} else {
			backoff = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			backoff = 0
		case <-retry:
		}
	}
}

// waitReady waits until Ready passes; false when ctx ends first.
func (s *Seeder) waitReady(ctx context.Context) bool {
	for {
		if s.Ready == nil || s.Ready() == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// apply applies every pool of the ConfigMap and reports each refusal. It
// returns an error when any pool is not (yet) applied.
func (s *Seeder) apply(ctx context.Context) error {
	var cm corev1.ConfigMap
	if err := s.Cache.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Name}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // nothing declared
		}
		return err
	}
	pools, bad := Parse([]byte(cm.Data[DataKey]))
	var failed []error
	for _, err := range bad {
		s.refused(&cm, "", err)
		failed = append(failed, err)
	}
	for _, p := range pools {
		changed, err := s.applyPool(ctx, p)
		if err != nil {
			s.refused(&cm, p.Name, err)
			failed = append(failed, fmt.Errorf("IPPool %q: %w", p.Name, err))
			continue
		}
		if changed {
			s.Log.Info("applied IPPool from values", "ippool", p.Name)
			s.Recorder.Eventf(&cm, nil, corev1.EventTypeNormal, ReasonApplied, "Apply", "IPPool %q from values applied", p.Name)
		}
	}
	return errors.Join(failed...)
}

// applyPool server-side applies one pool, forcing ownership of the fields
// values set (values are the release's truth, as in helm upgrade), and
// reports whether that changed the object.
func (s *Seeder) applyPool(ctx context.Context, p Pool) (bool, error) {
	var before v1alpha1.IPPool
	beforeRV := ""
	if err := s.Client.Get(ctx, client.ObjectKey{Name: p.Name}, &before); err == nil {
		beforeRV = before.ResourceVersion
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "IPPool",
		"metadata":   map[string]any{"name": p.Name},
		"spec":       p.Spec,
	}}
	if err := s.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return false, err
	}
	return u.GetResourceVersion() != beforeRV, nil
}

// refused logs and records a pool that was not applied. pool is empty when
// the entry had no usable name.
func (s *Seeder) refused(cm *corev1.ConfigMap, pool string, err error) {
	what := "an IPPool from values"
	if pool != "" {
		what = fmt.Sprintf("IPPool %q from values", pool)
	}
	s.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, ReasonRefused, "Apply", "%s not applied (retrying): %v", what, err)
}
