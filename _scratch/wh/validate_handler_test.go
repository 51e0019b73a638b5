package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
)

// frozenPod returns a pod in payments with the annotations the freeze
// gives it there, and those annotations.
func frozenPod(t *testing.T) (*corev1.Pod, map[string]string) {
	t.Helper()
	_, _, _, _, _, src := fuzzHandlers(t)
	ix, err := src.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	good := policy.Freeze(nil, policy.Namespace{Name: "payments", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}, ix).Apply(nil)
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "payments", Annotations: good},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	return pod, good
}

// TestValidateHandlerMatchesWithValidator: the validating pod handler,
// which reads the pod's view, answers every request exactly as
// controller-runtime's WithValidator over the same PodValidator answered
// it (allowed or not, status code, reason, message and causes, warnings),
// in both enforcement modes and under Calico's freeze rules: creates that
// are frozen (by either rules) or not, forbidden,
// generated, bound to a node that cannot be read, in an unknown
// namespace or on the host's network; updates that keep, change or drop a
// frozen annotation; deletes and connects; and malformed requests, which
// both answer with a 400.
func TestValidateHandlerMatchesWithValidator(t *testing.T) {
	_, _, _, _, lookup, src := fuzzHandlers(t)
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := frozenPod(t)
	changed := with(good, func(p *corev1.Pod) { p.Annotations[policy.AnnotationIPv4Pools] = `["general"]` })
	dropped := with(good, func(p *corev1.Pod) { delete(p.Annotations, policy.AnnotationProvenance) })
	ix, _ := src.Snapshot(context.Background())
	forbidden := with(good, func(p *corev1.Pod) {
		p.Namespace = "shop"
		p.Annotations = policy.Freeze(map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}, policy.Namespace{Name: "shop"}, ix).Apply(nil)
	})
	// Named in messages by its generateName: neither it nor the request
	// has a name yet.
	generated := podRequest(admissionv1.Create, with(good, func(p *corev1.Pod) { p.Name, p.GenerateName, p.Annotations = "", "p-", nil }), nil)
	generated.Name = ""
	requests := map[string]admissionv1.AdmissionRequest{
		"create frozen":            podRequest(admissionv1.Create, good, nil),
		"create unfrozen":          podRequest(admissionv1.Create, with(good, func(p *corev1.Pod) { p.Annotations = nil }), nil),
		"create forbidden":         podRequest(admissionv1.Create, forbidden, nil),
		"create generated":         generated,
		"create on an absent node": podRequest(admissionv1.Create, with(good, func(p *corev1.Pod) { p.Spec.NodeName = "absent" }), nil),
		"create in no namespace":   podRequest(admissionv1.Create, with(good, func(p *corev1.Pod) { p.Namespace = "absent" }), nil),
		"create on the host":       podRequest(admissionv1.Create, with(good, func(p *corev1.Pod) { p.Spec.HostNetwork, p.Annotations = true, nil }), nil),
		"update unchanged":         podRequest(admissionv1.Update, good, good),
		"update changed":           podRequest(admissionv1.Update, changed, good),
		"update dropped":           podRequest(admissionv1.Update, dropped, good),
		"update on the host":       podRequest(admissionv1.Update, with(good, func(p *corev1.Pod) { p.Spec.HostNetwork = true; p.Annotations = nil }), good),
		"delete":                   podRequest(admissionv1.Delete, nil, good),
		"connect":                  podRequest(admissionv1.Connect, nil, nil),
	}
	malformed := map[string]admissionv1.AdmissionRequest{
		"unknown operation":      podRequest("PATCH", good, nil),
		"create without object":  podRequest(admissionv1.Create, nil, nil),
		"create of a Namespace":  rawRequest(admissionv1.Create, `{"apiVersion":"v1","kind":"Namespace"}`, ""),
		"create of a string":     rawRequest(admissionv1.Create, `"pod"`, ""),
		"create of bad JSON":     rawRequest(admissionv1.Create, `{"metadata":`, ""),
		"annotation a number":    rawRequest(admissionv1.Create, `{"metadata":{"annotations":{"a":1}}}`, ""),
		"update without old":     podRequest(admissionv1.Update, good, nil),
		"update with a bad old":  rawRequest(admissionv1.Update, mustJSON(t, good), `{"spec":{"hostNetwork":"yes"}}`),
		"update with a bad new":  rawRequest(admissionv1.Update, `[]`, mustJSON(t, good)),
		"delete without old":     podRequest(admissionv1.Delete, nil, nil),
		"delete with a bad old":  rawRequest(admissionv1.Delete, "", `{"kind":"Node"}`),
		"create of a v2 Pod":     rawRequest(admissionv1.Create, `{"apiVersion":"v2","kind":"Pod"}`, ""),
		"create of an apps Pod":  rawRequest(admissionv1.Create, `{"apiVersion":"apps/v1"}`, ""),
		"metadata not an object": rawRequest(admissionv1.Create, `{"metadata":true}`, ""),
	}
	calicoFrozen := with(good, func(p *corev1.Pod) {
		p.Annotations = policy.Rules{PinDefaults: true}.Freeze(nil, policy.Namespace{Name: "payments", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}, ix, nil).Apply(nil)
	})
	requests["create frozen under Calico's rules"] = podRequest(admissionv1.Create, calicoFrozen, nil)
	for _, run := range []struct {
		name  string
		mode  Enforcement
		rules policy.Rules
	}{{"enforce", Enforce, policy.Rules{}}, {"warn", Warn, policy.Rules{}}, {"calico", Enforce, policy.Rules{PinDefaults: true}}} {
		v := &PodValidator{Enforcer: Enforcer{Mode: run.mode}, Lookup: lookup, Pools: src, Rules: run.rules}
		ours, generic := newValidateWebhook(v), admission.WithValidator[*corev1.Pod](scheme, v)
		mode := run.name
		for name, req := range requests {
			t.Run(mode+"/"+name, func(t *testing.T) {
				got := ours.Handle(context.Background(), admission.Request{AdmissionRequest: req})
				want := generic.Handle(context.Background(), admission.Request{AdmissionRequest: req})
				if got.Allowed != want.Allowed || !reflect.DeepEqual(got.Result, want.Result) || !reflect.DeepEqual(got.Warnings, want.Warnings) || len(got.Patches) > 0 {
					t.Fatalf("validate handler answered\n%+v %+v %q\nWithValidator answered\n%+v %+v %q", got.Allowed, got.Result, got.Warnings, want.Allowed, want.Result, want.Warnings)
				}
			})
		}
		for name, req := range malformed {
			t.Run(mode+"/"+name, func(t *testing.T) {
				got := ours.Handle(context.Background(), admission.Request{AdmissionRequest: req})
				want := generic.Handle(context.Background(), admission.Request{AdmissionRequest: req})
				for who, resp := range map[string]admission.Response{"validate handler": got, "WithValidator": want} {
					if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest {
						t.Fatalf("%s answered %+v %+v; want a 400", who, resp.Allowed, resp.Result)
					}
				}
			})
		}
	}
}

// TestPodHandlersReadKeysAsTheAPIServer: a pod whose JSON carries a key
// twice in different cases ("Annotations" beside "annotations",
// "HostNetwork") is decided on what the API server reads of it, which is
// the exactly-cased key only: encoding/json, which matches keys
// case-insensitively, would let such a pod pass for frozen, or for a
// hostNetwork pod, or carry its own pools past the freeze.
func TestPodHandlersReadKeysAsTheAPIServer(t *testing.T) {
	validatePod, mutatePod, _, _, _, _ := fuzzHandlers(t)
	good, ann := frozenPod(t)
	frozenJSON := mustJSON(t, ann)
	plain := with(good, func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "1"} })
	plainJSON := mustJSON(t, plain)
	recase := func(raw, from, to string) string {
		t.Helper()
		if !strings.Contains(raw, from) {
			t.Fatalf("%s has no %s", raw, from)
		}
		return strings.Replace(raw, from, to, 1)
	}
	// The API server reads {"a":"1"}: no frozen annotations.
	hiddenAfter := recase(plainJSON, `"annotations":{"a":"1"}`, `"annotations":{"a":"1"},"Annotations":`+frozenJSON)
	hiddenBefore := recase(plainJSON, `"annotations":{"a":"1"}`, `"Annotations":`+frozenJSON+`,"annotations":{"a":"1"}`)
	for name, raw := range map[string]string{"after": hiddenAfter, "before": hiddenBefore} {
		t.Run("frozen annotations in another case "+name, func(t *testing.T) {
			code, resp := serve(t, validatePod, reviewOf(rawRequest(admissionv1.Create, raw, "")))
			if code != http.StatusOK || resp == nil || resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, policy.AnnotationProvenance) {
				t.Fatalf("HTTP %d, %+v: want the unfrozen pod denied", code, resp)
			}
		})
	}
	t.Run("hostNetwork in another case", func(t *testing.T) {
		raw := recase(plainJSON, `"spec":{`, `"spec":{"HostNetwork":true,`)
		code, resp := serve(t, validatePod, reviewOf(rawRequest(admissionv1.Create, raw, "")))
		if code != http.StatusOK || resp == nil || resp.Allowed {
			t.Fatalf("HTTP %d, %+v: want the unfrozen pod denied, not skipped as hostNetwork", code, resp)
		}
	})
	t.Run("a change hidden in another case", func(t *testing.T) {
		changed := with(good, func(p *corev1.Pod) { p.Annotations[policy.AnnotationIPv4Pools] = `["general"]` })
		changedJSON := `"annotations":` + mustJSON(t, changed.Annotations)
		raw := recase(mustJSON(t, changed), changedJSON, changedJSON+`,"Annotations":`+frozenJSON)
		code, resp := serve(t, validatePod, reviewOf(rawRequest(admissionv1.Update, raw, mustJSON(t, good))))
		if code != http.StatusOK || resp == nil || resp.Allowed {
			t.Fatalf("HTTP %d, %+v: want the change of %s denied", code, resp, policy.AnnotationIPv4Pools)
		}
	})
	t.Run("own pools in another case", func(t *testing.T) {
		// The API server drops "Annotations": the pod names no pool and
		// gets its namespace's default.
		raw := recase(plainJSON, `"annotations":{"a":"1"}`, `"annotations":{"a":"1"},"Annotations":{"`+policy.AnnotationIPv4Pools+`":"[\"general\"]"}`)
		req := rawRequest(admissionv1.Create, raw, "")
		code, resp := serve(t, mutatePod, reviewOf(req))
		if code != http.StatusOK || resp == nil || !resp.Allowed {
			t.Fatalf("HTTP %d, %+v: want the pod frozen", code, resp)
		}
		patch, err := jsonpatch5.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := patch.Apply([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod // decoded as the API server decodes it
		if err := newReferenceDecoders(t).full.DecodeRaw(runtime.RawExtension{Raw: patched}, &pod); err != nil {
			t.Fatal(err)
		}
		prov, err := policy.ParseProvenance(pod.Annotations[policy.AnnotationProvenance])
		if err != nil || prov.IPv4 != policy.SourceNamespace || pod.Annotations[policy.AnnotationIPv4Pools] != `["trusted"]` {
			t.Fatalf("frozen to %v, provenance %+v (%v): want the namespace's default", pod.Annotations, prov, err)
		}
	})
}

// TestPodHandlersRefuseMalformedReviews: both pod handlers answer a review
// whose pod they cannot read with a 400 that says what is wrong, over
// HTTP as the API server (or anyone reaching the port) calls them.
func TestPodHandlersRefuseMalformedReviews(t *testing.T) {
	validatePod, mutatePod, _, _, _, _ := fuzzHandlers(t)
	for name, tc := range map[string]struct {
		req  admissionv1.AdmissionRequest
		want string
	}{
		"no object":           {rawRequest(admissionv1.Create, "", ""), "there is no object"},
		"a null object":       {rawRequest(admissionv1.Create, "null", ""), "there is no object"},
		"a string":            {rawRequest(admissionv1.Create, `"pod"`, ""), "not a JSON object"},
		"an array":            {rawRequest(admissionv1.Create, `[{"metadata":{}}]`, ""), "not a JSON object"},
		"a Namespace":         {rawRequest(admissionv1.Create, `{"apiVersion":"v1","kind":"Namespace"}`, ""), `kind "Namespace", not a v1 Pod`},
		"a Pod of apps/v1":    {rawRequest(admissionv1.Create, `{"apiVersion":"apps/v1","kind":"Pod"}`, ""), `not a v1 Pod`},
		"a kind in capitals":  {rawRequest(admissionv1.Create, `{"KIND":"Node"}`, ""), `kind "Node", not a v1 Pod`},
		"annotation a number": {rawRequest(admissionv1.Create, `{"metadata":{"annotations":{"a":1}}}`, ""), `metadata.annotations["a"] is a number, not a string`},
		"hostNetwork a string": {rawRequest(admissionv1.Create, `{"spec":{"hostNetwork":"true"}}`, ""),
			"spec.hostNetwork is a string, not a boolean"},
		"metadata an array": {rawRequest(admissionv1.Create, `{"metadata":[]}`, ""), "metadata is an array, not an object"},
	} {
		t.Run(name, func(t *testing.T) {
			for path, h := range map[string]http.Handler{PathValidatePod: validatePod, PathMutatePod: mutatePod} {
				code, resp := serve(t, h, reviewOf(tc.req))
				if code != http.StatusOK || resp == nil || resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest ||
					!strings.Contains(resp.Result.Message, ErrMalformedPod.Error()) || !strings.Contains(resp.Result.Message, tc.want) {
					t.Fatalf("%s: HTTP %d, %+v: want a 400 saying %q", path, code, resp, tc.want)
				}
			}
		})
	}
	t.Run("an update without its old object", func(t *testing.T) {
		good, _ := frozenPod(t)
		code, resp := serve(t, validatePod, reviewOf(rawRequest(admissionv1.Update, mustJSON(t, good), "")))
		if code != http.StatusOK || resp == nil || resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "the old object") {
			t.Fatalf("HTTP %d, %+v: want a 400 about the old object", code, resp)
		}
	})
	t.Run("JSON broken inside the object", func(t *testing.T) {
		// Only a direct caller can send it: over HTTP the review would not
		// decode.
		for path, h := range map[string]admission.Handler{PathValidatePod: validateHandler{}, PathMutatePod: freezeHandler{}} {
			resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: rawRequest(admissionv1.Create, `{"metadata":{"name":"p"`, "")})
			if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest || !strings.Contains(resp.Result.Message, "unexpected end of input") {
				t.Fatalf("%s: %+v: want a 400 about the JSON", path, resp.Result)
			}
		}
	})
}

// podRequest is a pod request in payments, as the API server sends it.
func podRequest(op admissionv1.Operation, obj, old *corev1.Pod) admissionv1.AdmissionRequest {
	raw := func(p *corev1.Pod) string {
		if p == nil {
			return ""
		}
		b, _ := json.Marshal(p)
		return string(b)
	}
	return rawRequest(op, raw(obj), raw(old))
}

// rawRequest is a pod request in payments carrying the given objects.
func rawRequest(op admissionv1.Operation, obj, old string) admissionv1.AdmissionRequest {
	req := admissionv1.AdmissionRequest{
		UID:       "u-1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Name:      "p",
		Namespace: "payments",
		Operation: op,
	}
	if obj != "" {
		req.Object.Raw = []byte(obj)
	}
	if old != "" {
		req.OldObject.Raw = []byte(old)
	}
	return req
}

// reviewOf wraps a request in an AdmissionReview.
func reviewOf(req admissionv1.AdmissionRequest) []byte {
	b, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req,
	})
	return b
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func with(p *corev1.Pod, mutate func(*corev1.Pod)) *corev1.Pod {
	p = p.DeepCopy()
	mutate(p)
	return p
}
