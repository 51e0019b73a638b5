package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Outcomes of an admission decision, as the metric labels them.
const (
	outcomeAllowed = "allowed"
	outcomeMutated = "mutated"
	outcomeDenied  = "denied"
	outcomeWarned  = "warned"
	outcomeError   = "error"
)

// decisions counts every decision by resource, operation, outcome and
// reason; controller-runtime's own webhook metrics add latency and in-flight
// requests per path.
var decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "poolguard_admission_decisions_total",
	Help: "Admission decisions by resource, operation, outcome (allowed, mutated, denied, warned, error) and reason.",
}, []string{"resource", "operation", "outcome", "reason"})

func init() {
	metrics.Registry.MustRegister(decisions)
}

func record(resource, operation, outcome, reason string) {
	decisions.WithLabelValues(resource, operation, outcome, reason).Inc()
}
