package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
)

// TestFreezeHandlerMatchesWithDefaulter: the freeze handler's patch turns
// each request into exactly the pod controller-runtime's generic
// WithDefaulter would produce over the same PodFreezer, under native and
// Calico rules, including annotation keys that need JSON pointer escaping,
// pods without annotations or with null ones, and pods bound to a node;
// what WithDefaulter refuses with a 400, the handler refuses too.
func TestFreezeHandlerMatchesWithDefaulter(t *testing.T) {
	_, _, _, _, lookup, src := fuzzHandlers(t)
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	forged := policy.Provenance{IPv4: policy.SourceNamespace, IPv6: policy.SourceDefault, Namespace: "payments"}.String()
	pods := map[string]*corev1.Pod{
		"no annotations":    {},
		"unrelated":         {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"a~b/c": "1"}}},
		"own pools":         {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{policy.AnnotationIPv6Pools: `["v6"]`}}},
		"forged provenance": {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{policy.AnnotationProvenance: forged}}},
		"already frozen":    {ObjectMeta: metav1.ObjectMeta{Annotations: policy.Freeze(nil, policy.Namespace{Name: "payments", ResourceVersion: "5", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}, nil).Apply(nil)}},
		"host network":      {Spec: corev1.PodSpec{HostNetwork: true}},
		"bound to a node":   {Spec: corev1.PodSpec{NodeName: "absent"}},
	}
	raws := map[string][]byte{}
	for name, p := range pods {
		p.APIVersion, p.Kind = "v1", "Pod"
		p.Name, p.Namespace = "p", "payments"
		p.Spec.Containers = []corev1.Container{{Name: "c", Image: "i"}}
		raws[name], _ = json.Marshal(p)
	}
	// WithDefaulter patches whatever its re-encoding of the typed pod adds,
	// so these start from that encoding.
	for name, annotations := range map[string]string{"null annotations": "null", "empty annotations": "{}"} {
		raws[name] = bytes.Replace(raws["no annotations"], []byte(`"namespace":"payments"`), []byte(`"namespace":"payments","annotations":`+annotations), 1)
	}
	malformed := map[string][]byte{
		"a Namespace":         []byte(`{"apiVersion":"v1","kind":"Namespace"}`),
		"annotation a number": []byte(`{"metadata":{"annotations":{"a":1}}}`),
		"an array":            []byte(`[]`),
		"no object":           nil,
	}
	for _, rules := range []policy.Rules{{}, {PinDefaults: true}} {
		freezer := &PodFreezer{Lookup: lookup, Pools: src, Rules: rules}
		ours := newFreezeWebhook(freezer)
		generic := admission.WithDefaulter[*corev1.Pod](scheme, freezer)
		request := func(raw []byte) admission.Request {
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "1", Operation: admissionv1.Create, Namespace: "payments",
				Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			}}
			req.Object.Raw = raw
			return req
		}
		for name, raw := range raws {
			t.Run(fmt.Sprintf("%+v/%s", rules, name), func(t *testing.T) {
				got := apply(t, raw, ours.Handle(context.Background(), request(raw)))
				want := apply(t, raw, generic.Handle(context.Background(), request(raw)))
				if !jsonpatch5.Equal(got, want) {
					t.Fatalf("freeze handler produced\n%s\nWithDefaulter produced\n%s", got, want)
				}
			})
		}
		for name, raw := range malformed {
			t.Run(fmt.Sprintf("%+v/%s", rules, name), func(t *testing.T) {
				for who, h := range map[string]*admission.Webhook{"freeze handler": ours, "WithDefaulter": generic} {
					if resp := h.Handle(context.Background(), request(raw)); resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest {
						t.Fatalf("%s answered %v %+v; want a 400", who, resp.Allowed, resp.Result)
					}
				}
			})
		}
	}
}

// apply applies an allowed response's patch to raw.
func apply(t *testing.T, raw []byte, resp admission.Response) []byte {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	if len(resp.Patches) == 0 {
		return raw
	}
	ops, _ := json.Marshal(resp.Patches)
	patch, err := jsonpatch5.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", ops, err)
	}
	return out
}
