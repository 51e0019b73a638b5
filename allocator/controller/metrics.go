package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// What the garbage collector frees, and what made it look.
const (
	kindClaim = "claim"
	kindSlot  = "slot"
	kindBlock = "block"

	// triggerSweep: the full sweep; triggerPodDeleted: the pod
	// controller, on a pod's deletion.
	triggerSweep      = "sweep"
	triggerPodDeleted = "pod_deleted"
)

var (
	// sweepDuration times every sweep, failed ones too: at 150,000 pods
	// a sweep takes well under a second (README, Performance), so one in
	// the top buckets says the leader is starved or the cache is huge.
	sweepDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "poolguard_gc_sweep_duration_seconds",
		Help:    "Duration of the garbage collector's full sweeps (listing the cache and deciding; releases included).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5ms to about 10s
	})
	// sweepObjects is what the last sweep saw, so the sweep's duration
	// can be read against the cluster's size.
	sweepObjects = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "poolguard_gc_sweep_objects",
		Help: "Objects the garbage collector's last complete sweep read from the cache, by kind (claims, blocks, slots: the blocks' used slots, pods, nodes).",
	}, []string{"kind"})
	// suspectsGauge is how many candidates wait for the grace period.
	suspectsGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "poolguard_gc_suspects",
		Help: "Candidates for garbage collection (claims of gone pods, slots no claim records, empty blocks of deleted nodes) waiting for the grace period, after the last sweep.",
	})
	// freedTotal counts what the collector freed, by kind and trigger.
	freedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "poolguard_gc_freed_total",
		Help: "What the garbage collector freed: kind claim (a gone pod's addresses), slot (an address no claim records) or block (an empty block of a deleted node); trigger sweep or pod_deleted.",
	}, []string{"kind", "trigger"})
)

func init() {
	metrics.Registry.MustRegister(sweepDuration, sweepObjects, suspectsGauge, freedTotal)
}

// observeSweep records a complete sweep.
func observeSweep(took time.Duration, claims, blocks, slots, pods, nodes, suspects int) {
	sweepDuration.Observe(took.Seconds())
	sweepObjects.WithLabelValues("claims").Set(float64(claims))
	sweepObjects.WithLabelValues("blocks").Set(float64(blocks))
	sweepObjects.WithLabelValues("slots").Set(float64(slots))
	sweepObjects.WithLabelValues("pods").Set(float64(pods))
	sweepObjects.WithLabelValues("nodes").Set(float64(nodes))
	suspectsGauge.Set(float64(suspects))
}
