package webhook

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/policy"
)

// TestPodHandlersMatchControllerRuntime feeds the same reviews to the pod
// handlers Setup registers and to controller-runtime's generic wrappers
// around the same PodFreezer and PodValidator, which they replace for
// speed: every answer must be the same (status, allowed, result, warnings,
// and the pod the patch produces).
func TestPodHandlersMatchControllerRuntime(t *testing.T) {
	crValidate, crMutate, _, _, lookup, src := fuzzHandlers(t)
	mutate := mutatePodWebhook(&PodFreezer{Lookup: lookup})
	validate := validatePodWebhook(&PodValidator{Enforcer: Enforcer{Mode: Enforce}, Lookup: lookup, Pools: src})

	pod := func(ns string, ann map[string]string, hostNetwork bool) *corev1.Pod {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, Annotations: ann},
			Spec:       corev1.PodSpec{HostNetwork: hostNetwork, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		}
	}
	nsTrusted := policy.Namespace{Name: "payments", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}
	good := policy.Freeze(nil, nsTrusted).Apply(map[string]string{"team": "a/b~c"})
	changed := policy.Freeze(nil, nsTrusted).Apply(nil)
	changed[policy.AnnotationIPv4Pools] = `["general"]`
	forged := map[string]string{policy.AnnotationProvenance: `{"ipv4pools":"namespace","ipv6pools":"default","namespace":"payments"}`, policy.AnnotationIPv4Pools: `["general"]`}

	cases := map[string][]byte{
		"no annotations":           review(admissionv1.Create, pod("payments", nil, false), nil),
		"empty annotations":        review(admissionv1.Create, pod("payments", map[string]string{}, false), nil),
		"own pools":                review(admissionv1.Create, pod("payments", map[string]string{policy.AnnotationIPv4Pools: `["general"]`, policy.AnnotationIPv6Pools: `["v6"]`}, false), nil),
		"forged provenance":        review(admissionv1.Create, pod("payments", forged, false), nil),
		"already frozen":           review(admissionv1.Create, pod("payments", good, false), nil),
		"namespace without pools":  review(admissionv1.Create, pod("shop", map[string]string{"x": "y"}, false), nil),
		"unknown namespace":        review(admissionv1.Create, pod("nowhere", nil, false), nil),
		"forbidden pool":           review(admissionv1.Create, pod("shop", policy.Freeze(map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}, policy.Namespace{Name: "shop"}).Apply(nil), false), nil),
		"hostNetwork":              review(admissionv1.Create, pod("payments", map[string]string{policy.AnnotationIPv4Pools: `["x"]`}, true), nil),
		"update changing pools":    review(admissionv1.Update, pod("payments", changed, false), pod("payments", good, false)),
		"update leaving pools":     review(admissionv1.Update, pod("payments", good, false), pod("payments", good, false)),
		"delete":                   review(admissionv1.Delete, nil, pod("payments", good, false)),
		"connect":                  review(admissionv1.Connect, nil, nil),
		"unknown operation":        []byte(`{"request":{"uid":"x","operation":"PATCH","object":{"kind":"Pod"}}}`),
		"no object":                []byte(`{"request":{"uid":"x","operation":"CREATE"}}`),
		"not an object":            []byte(`{"request":{"uid":"x","operation":"CREATE","object":"not an object"}}`),
		"mistyped field":           []byte(`{"request":{"uid":"x","operation":"CREATE","namespace":"payments","object":{"kind":"Pod","spec":{"containers":1}}}}`),
		"another kind":             []byte(`{"request":{"uid":"x","operation":"CREATE","namespace":"payments","object":{"apiVersion":"v1","kind":"Namespace"}}}`),
		"another version":          []byte(`{"request":{"uid":"x","operation":"CREATE","namespace":"payments","object":{"apiVersion":"v2","kind":"Pod"}}}`),
		"no kind":                  []byte(`{"request":{"uid":"x","operation":"CREATE","namespace":"payments","object":{"metadata":{"name":"p"}}}}`),
		"update without old":       []byte(`{"request":{"uid":"x","operation":"UPDATE","namespace":"payments","object":{"kind":"Pod"}}}`),
		"case-insensitive field":   []byte(`{"request":{"uid":"x","operation":"CREATE","namespace":"payments","object":{"kind":"Pod","Metadata":{"annotations":{"a":"b"}}}}}`),
		"annotation of wrong type": []byte(`{"request":{"uid":"x","operation":"CREATE","namespace":"payments","object":{"kind":"Pod","metadata":{"annotations":{"a":1}}}}}`),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			var in admissionv1.AdmissionReview
			_ = json.Unmarshal(body, &in)
			for _, h := range []struct {
				name    string
				got, cr http.Handler
			}{{"mutate", mutate, crMutate}, {"validate", validate, crValidate}} {
				gotCode, got := serve(t, h.got, body)
				wantCode, want := serve(t, h.cr, body)
				if gotCode != wantCode || (got == nil) != (want == nil) {
					t.Fatalf("%s: HTTP %d, response %+v; controller-runtime: HTTP %d, response %+v", h.name, gotCode, got, wantCode, want)
				}
				if got == nil {
					continue
				}
				if got.Allowed != want.Allowed || !reflect.DeepEqual(got.Warnings, want.Warnings) || got.UID != want.UID {
					t.Fatalf("%s: allowed=%v warnings=%q; controller-runtime: allowed=%v warnings=%q", h.name, got.Allowed, got.Warnings, want.Allowed, want.Warnings)
				}
				// Decode errors are worded by different decoders; every
				// other result must be the same.
				if want.Result == nil || want.Result.Code != http.StatusBadRequest {
					if !reflect.DeepEqual(got.Result, want.Result) {
						t.Fatalf("%s: result %+v; controller-runtime: %+v", h.name, got.Result, want.Result)
					}
				} else if got.Result == nil || got.Result.Code != http.StatusBadRequest {
					t.Fatalf("%s: result %+v; controller-runtime refused the review as bad: %+v", h.name, got.Result, want.Result)
				}
				if gp, wp := patched(t, in, got), patched(t, in, want); !reflect.DeepEqual(gp, wp) {
					t.Fatalf("%s: patched pod\n%+v\ncontroller-runtime's\n%+v", h.name, gp, wp)
				}
			}
		})
	}
}

// patched applies a response's patch to the review's object and decodes
// the result; nil when the review carries no pod.
func patched(t *testing.T, in admissionv1.AdmissionReview, resp *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	if in.Request == nil || len(in.Request.Object.Raw) == 0 {
		return nil
	}
	doc := in.Request.Object.Raw
	if len(resp.Patch) > 0 {
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("patch %s: %v", resp.Patch, err)
		}
		if doc, err = p.Apply(doc); err != nil {
			t.Fatalf("applying %s: %v", resp.Patch, err)
		}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(doc, &pod); err != nil {
		return nil
	}
	return &pod
}

// TestAnnotationPatchEscapes checks the JSON pointer escaping of keys with
// slashes and tildes.
func TestAnnotationPatchEscapes(t *testing.T) {
	ops := annotationPatch(map[string]string{"a~b": "1", "gone/x": "2"}, map[string]string{"a~b": "3", "new/y": "4"})
	var got []string
	for _, o := range ops {
		got = append(got, o.Operation+" "+o.Path)
	}
	want := []string{"replace /metadata/annotations/a~0b", "add /metadata/annotations/new~1y", "remove /metadata/annotations/gone~1x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ops = %q, want %q", got, want)
	}
}
