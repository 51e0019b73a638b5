package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"poolguard.dev/poolguard/allocator/history/archive"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
)

// Options configure the allocator's controllers.
type Options struct {
	// GracePeriod: see DefaultGracePeriod.
	GracePeriod time.Duration
	// Interval between garbage collection sweeps: see DefaultInterval.
	Interval time.Duration
	// HistoryRetention is how long the attribution history keeps a
	// released allocation: see DefaultHistoryRetention.
	HistoryRetention time.Duration
	// HistoryOff stops recording: the recorder only lets released claims
	// go (see Recorder.Off).
	HistoryOff bool
}

// MinGracePeriod is the shortest grace period poolguard-webhook runs the
// collector with. The CNI plugin's timeout must be at most half the grace
// period (an ADD writes its slots first and its claim last, and a
// timed-out ADD's retry reuses the slots and may take a timeout again:
// the plugin's ipam.gcGracePeriod check and the chart apply the same
// rule); below 10s that leaves the plugin under 5s per ADD, which a busy
// API server or a queue of ADDs on the node's lock exceeds.
const MinGracePeriod = 10 * time.Second

// ErrInvalidOptions: the controllers were given options they must not run
// with.
var ErrInvalidOptions = errors.New("invalid allocator controller options")

// Validate refuses a grace period below MinGracePeriod, with what to do.
// Zero is valid: Setup uses DefaultGracePeriod. Setup itself does not
// call it, so tests may run the collector with a tiny grace period.
func (o Options) Validate() error {
	if o.GracePeriod != 0 && o.GracePeriod < MinGracePeriod {
		return fmt.Errorf("%w: --gc-grace-period %s is below the minimum %s: the garbage collector would free the addresses of CNI ADDs still running; "+
			"keep it at least twice the CNI plugin's timeout (ipam.timeout, default 30s; in the chart, allocator.gc.gracePeriod and cni.timeout)",
			ErrInvalidOptions, o.GracePeriod, MinGracePeriod)
	}
	if o.HistoryRetention != 0 && o.HistoryRetention < MinHistoryRetention {
		return fmt.Errorf("%w: --history-retention %s is below the minimum %s: the history expires by whole UTC days", ErrInvalidOptions, o.HistoryRetention, MinHistoryRetention)
	}
	return nil
}

// Setup registers the IPPool status controller, the history recorder and
// its expiry, and the garbage collector (its sweep every Interval, and its
// controller of pod deletions, PodGone) with the manager. All run only on
// the elected leader. The manager's cache should be built with
// CacheOptions.
func Setup(mgr manager.Manager, o Options) error {
	if o.GracePeriod == 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.HistoryRetention == 0 {
		o.HistoryRetention = DefaultHistoryRetention
	}
	if err := v1alpha1.AddToScheme(mgr.GetScheme()); err != nil {
		return err
	}
	direct, err := kubestore.NewClient(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("allocator controllers: client: %w", err)
	}
	store := kubestore.Store{Client: direct}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.IPAMBlock{}, PoolField, func(o client.Object) []string {
		return []string{o.(*v1alpha1.IPAMBlock).Spec.Pool}
	}); err != nil {
		return fmt.Errorf("indexing IPAMBlocks by pool: %w", err)
	}
	log := mgr.GetLogger().WithName("allocator")
	status := &PoolStatus{Client: mgr.GetClient(), Store: store, Log: log.WithName("pool-status")}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("ippool-status").
		For(&apiv1alpha1.IPPool{}).
		Watches(&v1alpha1.IPAMBlock{}, handler.EnqueueRequestsFromMapFunc(blockToPool)).
		Complete(status); err != nil {
		return fmt.Errorf("IPPool status controller: %w", err)
	}
	hist := archive.Archive{Client: mgr.GetClient(), Live: mgr.GetAPIReader()}
	rec := &Recorder{Client: mgr.GetClient(), Archive: hist, Log: log.WithName("history"), Off: o.HistoryOff}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("history").
		For(&v1alpha1.IPAMClaim{}, builder.WithPredicates(predicate.NewPredicateFuncs(wantsRecorder))).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(rec); err != nil {
		return fmt.Errorf("history recorder: %w", err)
	}
	// Expiry runs with the history off too: what was recorded before
	// still goes when its time is up.
	if err := mgr.Add(&Expirer{Archive: hist, Retention: o.HistoryRetention, Log: log.WithName("history")}); err != nil {
		return err
	}
	gc := &Collector{Reader: mgr.GetCache(), Live: mgr.GetAPIReader(), Store: store, GracePeriod: o.GracePeriod, Log: log.WithName("gc")}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.IPAMClaim{}, ClaimPodField, indexClaimPod); err != nil {
		return fmt.Errorf("indexing IPAMClaims by pod: %w", err)
	}
	gone := &PodGone{Reader: mgr.GetCache(), Collector: gc}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("gc-pod-gone").
		// Pods as metadata: the informer the sweep reads.
		WatchesMetadata(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(gone.claimsOfPod), builder.WithPredicates(podDeleted)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(gone); err != nil {
		return fmt.Errorf("garbage collector's pod controller: %w", err)
	}
	// A Runnable without NeedLeaderElection runs only on the leader.
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		for {
			if rep, err := gc.Sweep(ctx); err != nil {
				gc.Log.Error(err, "garbage collection sweep")
			} else if rep.ClaimsReleased+rep.SlotsReleased+rep.BlocksDeleted > 0 {
				gc.Log.Info("garbage collection sweep", "claimsReleased", rep.ClaimsReleased, "slotsReleased", rep.SlotsReleased, "blocksDeleted", rep.BlocksDeleted, "suspects", rep.Suspects)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}))
}
