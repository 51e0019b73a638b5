package controller

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/history/archive"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// Defaults of the attribution history.
const (
	// DefaultHistoryRetention is how long released allocations stay
	// queryable: a week of firewall logs. Longer retention belongs in the
	// cluster's log pipeline: the recorder logs every record it writes.
	DefaultHistoryRetention = 7 * 24 * time.Hour
	// MinHistoryRetention: a day, the unit in which history expires.
	MinHistoryRetention = 24 * time.Hour
	// historyExpiryInterval is how often expired days are deleted.
	historyExpiryInterval = time.Hour
)

// Recorder writes the attribution history: when a claim carrying the
// history finalizer is deleted (its addresses released), it files one
// record per address into the history and then lets the claim go. A claim
// deleted while the recorder is down waits for it, so nothing goes
// unrecorded. A live claim without the finalizer (made before the history
// was turned on, or by a plugin not configured for it) gets it, with the
// shard labels who-had finds live claims by.
//
// With Off set, it records nothing and only removes the finalizer, so that
// turning the history off never strands claims.
type Recorder struct {
	Client  client.Client
	Archive archive.Archive
	Log     logr.Logger
	Off     bool
}

// Reconcile implements reconcile.Reconciler for IPAMClaims.
func (r *Recorder) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var c v1alpha1.IPAMClaim
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	has := controllerutil.ContainsFinalizer(&c, v1alpha1.FinalizerHistory)
	if c.DeletionTimestamp == nil {
		if has || r.Off {
			return ctrl.Result{}, nil
		}
		patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(&c, v1alpha1.FinalizerHistory)
		for k, v := range kubestore.ClaimShardLabels(&c) {
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			c.Labels[k] = v
		}
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Patch(ctx, &c, patch))
	}
	if !has {
		return ctrl.Result{}, nil
	}
	if !r.Off {
		recs := archive.RecordsOf(&c)
		if err := r.Archive.Append(ctx, recs); err != nil {
			return ctrl.Result{}, err
		}
		for _, rec := range recs {
			// One structured line per record: the cluster's log pipeline
			// keeps what outlives the retention window.
			r.Log.Info("address released", "address", rec.Address.String(), "pool", rec.Pool,
				"namespace", rec.Namespace, "pod", rec.Pod, "podUID", rec.PodUID, "node", rec.Node,
				"containerID", rec.ContainerID, "ifName", rec.IfName,
				"allocatedAt", rec.From.Format(time.RFC3339), "releasedAt", rec.To.Format(time.RFC3339))
		}
	}
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(&c, v1alpha1.FinalizerHistory)
	return ctrl.Result{}, client.IgnoreNotFound(r.Client.Patch(ctx, &c, patch))
}

// wantsRecorder filters the claim events the recorder acts on: released
// claims it holds, and live claims it does not hold yet.
func wantsRecorder(o client.Object) bool {
	return controllerutil.ContainsFinalizer(o, v1alpha1.FinalizerHistory) == (o.GetDeletionTimestamp() != nil)
}

// Expirer deletes the history's days older than the retention window.
type Expirer struct {
	Archive   archive.Archive
	Retention time.Duration
	Log       logr.Logger
	// Now is time.Now, replaceable by tests.
	Now func() time.Time
}

// Expire runs one pass.
func (e *Expirer) Expire(ctx context.Context) (int, error) {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	n, err := e.Archive.Expire(ctx, now(), e.Retention)
	if n > 0 {
		e.Log.Info("deleted expired history segments", "segments", n, "retention", e.Retention.String(), "kept from", history.Day(now().Add(-e.Retention)))
	}
	return n, err
}

// Start runs Expire now and every historyExpiryInterval (leader only).
func (e *Expirer) Start(ctx context.Context) error {
	t := time.NewTicker(historyExpiryInterval)
	defer t.Stop()
	for {
		if _, err := e.Expire(ctx); err != nil {
			e.Log.Error(err, "expiring history")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
