package webhook

import (
	"context"

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

// record counts a decision, unless the request is one the API server would
// never have sent (see screen): a forged request must not move the metrics
// a security team alerts on.
func record(ctx context.Context, resource, operation, outcome, reason string) {
	if untrusted(ctx) != "" {
		return
	}
	decisions.WithLabelValues(resource, operation, outcome, reason).Inc()
}
