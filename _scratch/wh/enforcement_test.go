package webhook

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/policy"
)

// TestEnforcementModes: the same forbidden pod is denied in enforce mode and
// admitted with a warning in warn mode, and each decision is counted under
// its outcome and reason.
func TestEnforcementModes(t *testing.T) {
	_, _, _, _, lookup, src := fuzzHandlers(t)
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	// A shop pod naming the payments-only pool, frozen as the mutating
	// webhook would have frozen it.
	ix, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ann := policy.Freeze(map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}, policy.Namespace{Name: "shop"}, ix).Apply(nil)
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop", Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	body := review(admissionv1.Create, pod, nil)
	body = []byte(strings.Replace(string(body), `"namespace":"payments"`, `"namespace":"shop"`, 1))

	for _, tc := range []struct {
		mode    Enforcement
		allowed bool
		outcome string
	}{{Enforce, false, outcomeDenied}, {Warn, true, outcomeWarned}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			counter := decisions.WithLabelValues("pods", "CREATE", tc.outcome, "forbidden_pool")
			before := testutil.ToFloat64(counter)
			h := Handlers(scheme, lookup, src, Enforcer{Mode: tc.mode})[PathValidatePod]
			code, resp := serve(t, h, body)
			if code != http.StatusOK || resp == nil {
				t.Fatalf("HTTP %d, response %v", code, resp)
			}
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if tc.mode == Warn && !strings.Contains(strings.Join(resp.Warnings, "\n"), warnPrefix) {
				t.Fatalf("warn mode gave no warning: %q", resp.Warnings)
			}
			if tc.mode == Enforce && (resp.Result == nil || !strings.Contains(resp.Result.Message, `does not allow namespace "shop"`)) {
				t.Fatalf("denial message = %v", resp.Result)
			}
			if got := testutil.ToFloat64(counter) - before; got != 1 {
				t.Fatalf("poolguard_admission_decisions_total{outcome=%q,reason=forbidden_pool} rose by %v, want 1", tc.outcome, got)
			}
		})
	}
}

func TestParseEnforcement(t *testing.T) {
	for in, ok := range map[string]bool{"enforce": true, "warn": true, "Warn": false, "": false, "audit": false} {
		if _, err := ParseEnforcement(in); (err == nil) != ok {
			t.Errorf("ParseEnforcement(%q) = %v", in, err)
		}
	}
}
