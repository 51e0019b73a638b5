package webhook

import (
	"context"
	"encoding/json"
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
// WithDefaulter would produce, including annotation keys that need JSON
// pointer escaping and pods without annotations.
func TestFreezeHandlerMatchesWithDefaulter(t *testing.T) {
	_, _, _, _, lookup, src := fuzzHandlers(t)
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	freezer := &PodFreezer{Lookup: lookup, Pools: src}
	ours := newFreezeWebhook(scheme, freezer)
	generic := admission.WithDefaulter[*corev1.Pod](scheme, freezer)
	forged := policy.Provenance{IPv4: policy.SourceNamespace, IPv6: policy.SourceDefault, Namespace: "payments"}.String()
	pods := map[string]*corev1.Pod{
		"no annotations":    {},
		"unrelated":         {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"a~b/c": "1"}}},
		"own pools":         {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{policy.AnnotationIPv6Pools: `["v6"]`}}},
		"forged provenance": {ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{policy.AnnotationProvenance: forged}}},
		"already frozen":    {ObjectMeta: metav1.ObjectMeta{Annotations: policy.Freeze(nil, policy.Namespace{Name: "payments", ResourceVersion: "5", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}, nil).Apply(nil)}},
		"host network":      {Spec: corev1.PodSpec{HostNetwork: true}},
	}
	for name, p := range pods {
		t.Run(name, func(t *testing.T) {
			p.APIVersion, p.Kind = "v1", "Pod"
			p.Name, p.Namespace = "p", "payments"
			p.Spec.Containers = []corev1.Container{{Name: "c", Image: "i"}}
			raw, _ := json.Marshal(p)
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				UID: "1", Operation: admissionv1.Create, Namespace: "payments",
				Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			}}
			req.Object.Raw = raw
			got := apply(t, raw, ours.Handle(context.Background(), req))
			want := apply(t, raw, generic.Handle(context.Background(), req))
			if !jsonpatch5.Equal(got, want) {
				t.Fatalf("freeze handler produced\n%s\nWithDefaulter produced\n%s", got, want)
			}
		})
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
