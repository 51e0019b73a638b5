package webhook

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	"poolguard.dev/poolguard/policy"
)

// fakeRecorder is client-go's fake events recorder with the annotated
// variant controller-runtime's interface asks for.
type fakeRecorder struct{ *events.FakeRecorder }

// TestScreenRecordsNothingForForgedReviews: a denial the API server could
// have asked for is counted and recorded in the pod's namespace; the same
// denial asked about an excluded namespace, or without a request UID, is
// answered but counted and recorded nowhere.
func TestScreenRecordsNothingForForgedReviews(t *testing.T) {
	_, _, _, _, lookup, src := fuzzHandlers(t)
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	rec := events.NewFakeRecorder(10)
	enforcer := Enforcer{Mode: Enforce, Events: &Events{Recorder: fakeRecorder{rec}}}
	h := Screened(Handlers(scheme, lookup, src, enforcer)[PathValidatePod], []string{"kube-system"})
	counter := decisions.WithLabelValues("pods", "CREATE", outcomeDenied, "not_frozen")

	for _, tc := range []struct {
		name, namespace, uid string
		genuine              bool
	}{
		{"an included namespace", "payments", "u-1", true},
		{"an excluded namespace", "kube-system", "u-2", false},
		{"no request UID", "payments", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An unfrozen pod: denied wherever it is asked about.
			// The object names payments in every case, so that the
			// decision is the same one; the request says where it is from.
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "payments"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
			body := review(admissionv1.Create, pod, nil)
			body = []byte(strings.Replace(string(body), `"namespace":"payments"`, `"namespace":"`+tc.namespace+`"`, 1))
			body = []byte(strings.Replace(string(body), `"uid":"u-1"`, `"uid":"`+tc.uid+`"`, 1))
			before := testutil.ToFloat64(counter)
			code, resp := serve(t, h, body)
			if code != http.StatusOK || resp == nil || resp.Allowed {
				t.Fatalf("HTTP %d, response %+v: want a denial", code, resp)
			}
			counted := testutil.ToFloat64(counter) - before
			var event string
			select {
			case event = <-rec.Events:
			default:
			}
			if tc.genuine && (counted != 1 || !strings.Contains(event, policy.ReasonDenied)) {
				t.Fatalf("genuine denial: counted %v, event %q", counted, event)
			}
			if !tc.genuine && (counted != 0 || event != "") {
				t.Fatalf("forged review counted %v times and recorded %q", counted, event)
			}
		})
	}
}
