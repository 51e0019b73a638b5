package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	kjson "sigs.k8s.io/json"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/source"
)

// fuzzHandlers builds the real admission handlers over an in-memory client:
// the fuzz target exercises decoding and decisions, not the API server
// (the integration tests do that).
func fuzzHandlers(t testing.TB) (validatePod, mutatePod, validateNS, validatePool http.Handler, lookup Lookup, src source.Source) {
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments", ResourceVersion: "5",
			Labels:      map[string]string{policy.LabelNamespaceName: "payments"},
			Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", ResourceVersion: "6"}},
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "trusted"}, Spec: v1alpha1.IPPoolSpec{CIDR: "198.51.100.0/24", BlockSize: 26,
			AssignmentMode:    v1alpha1.AssignmentManual,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{policy.LabelNamespaceName: "payments"}}}},
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "general"}, Spec: v1alpha1.IPPoolSpec{CIDR: "198.18.0.0/16", BlockSize: 26}},
		&v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: v1alpha1.IPPoolSpec{CIDR: "2001:db8::/48", BlockSize: 122}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	lookup = Lookup{Cache: c}
	src = source.Native{Reader: c}
	hs := Handlers(scheme, lookup, src, Enforcer{Mode: Enforce})
	for _, h := range hs {
		h.WithRecoverPanic(false) // a panic must fail the fuzz target, not become a 500
	}
	validatePod, mutatePod, validateNS, validatePool = hs[PathValidatePod], hs[PathMutatePod], hs[PathValidateNamespace], hs[PathValidateIPPool]
	return
}

// review wraps a pod in an AdmissionReview the way the API server sends it.
func review(op admissionv1.Operation, obj, old any) []byte {
	raw := func(o any) []byte {
		if o == nil {
			return nil
		}
		b, _ := json.Marshal(o)
		return b
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "u-1",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "payments",
			Operation: op,
		},
	}
	r.Request.Object.Raw = raw(obj)
	r.Request.OldObject.Raw = raw(old)
	b, _ := json.Marshal(r)
	return b
}

// serve posts a body to a handler and decodes the AdmissionReview answer.
func serve(t *testing.T, h http.Handler, body []byte) (int, *admissionv1.AdmissionResponse) {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		return rec.Code, nil
	}
	return rec.Code, out.Response
}

// FuzzAdmissionReview feeds raw bytes, as an API server or an attacker
// could send them, to every handler. No input may panic, every malformed
// review must be answered with a refusal, the pod handlers must read every
// pod object as the scheme's decoder reads it (checkPodView), and the pod
// validator may allow a request only when the policy, applied
// independently here to the pod as the API server decodes it, allows it.
func FuzzAdmissionReview(f *testing.F) {
	frozen := func(ann map[string]string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "payments", Annotations: ann},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
		return p
	}
	validatePod, mutatePod, validateNS, validatePool, lookup, src := fuzzHandlers(f)
	scheme, err := NewScheme()
	if err != nil {
		f.Fatal(err)
	}
	subresources := Handlers(scheme, lookup, src, Enforcer{Mode: Enforce})[PathValidatePodSubresource].WithRecoverPanic(false)
	ref := newReferenceDecoders(f)
	ix, err := src.Snapshot(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	good := policy.Freeze(nil, policy.Namespace{Name: "payments", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}, ix).Apply(nil)
	f.Add(review(admissionv1.Create, frozen(good), nil))
	f.Add(review(admissionv1.Create, frozen(nil), nil))
	f.Add(review(admissionv1.Create, frozen(map[string]string{policy.AnnotationIPv4Pools: `["general"]`}), nil))
	changed := map[string]string{}
	for k, v := range good {
		changed[k] = v
	}
	changed[policy.AnnotationIPv4Pools] = `["general"]`
	f.Add(review(admissionv1.Update, frozen(changed), frozen(good)))
	f.Add(review(admissionv1.Update, frozen(good), frozen(good)))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"request":{"uid":"x","operation":"CREATE","object":{"kind":"Pod"}}}`))
	f.Add([]byte(`{"request":{"uid":"x","operation":"CREATE","object":"not an object"}}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"request":{"uid":"x","operation":"CREATE","subResource":"binding","namespace":"payments","name":"p","object":{"metadata":{"annotations":{"cni.projectcalico.org/ipv4pools":"[\"trusted\"]"}},"target":{"name":"n"}}}}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		for _, h := range []http.Handler{mutatePod, validateNS, validatePool} {
			serve(t, h, body)
		}
		// A subresource CREATE may be allowed only when its object carries
		// no frozen annotation.
		if _, resp := serve(t, subresources, body); resp != nil && resp.Allowed {
			var in admissionv1.AdmissionReview
			if json.Unmarshal(body, &in) == nil && in.Request != nil && in.Request.Operation == admissionv1.Create && in.Request.SubResource != "" {
				var meta metav1.PartialObjectMetadata
				if json.Unmarshal(in.Request.Object.Raw, &meta) == nil {
					for _, k := range policy.GuardedKeys {
						if _, ok := meta.Annotations[k]; ok {
							t.Fatalf("pods/%s carrying %s allowed", in.Request.SubResource, k)
						}
					}
				}
			}
		}
		code, resp := serve(t, validatePod, body)
		// The review as controller-runtime decodes it: with the API
		// server's case-sensitive decoder.
		var in admissionv1.AdmissionReview
		decodable := kjson.UnmarshalCaseSensitivePreserveInts(body, &in) == nil && in.Request != nil
		if decodable {
			// Every pod object a handler may read is read as the
			// scheme's decoder reads it, allowed or not.
			for _, raw := range [][]byte{in.Request.Object.Raw, in.Request.OldObject.Raw} {
				checkPodView(t, ref, raw)
			}
		}
		if resp == nil {
			if code == http.StatusOK && decodable {
				t.Fatalf("decodable review answered with no AdmissionResponse (HTTP %d)", code)
			}
			return
		}
		if !resp.Allowed {
			return
		}
		// Allowed: re-derive the verdict independently.
		if !decodable {
			t.Fatalf("undecodable review allowed: %q", body)
		}
		req := in.Request
		// The pod as the API server decodes it (case-sensitive keys), in
		// the fields poolguard reads: the fields it does not read are not
		// type-checked (TestPodViewReadsOnlyItsFields).
		pod, err := ref.mirrorView(req.Object.Raw)
		if err != nil && req.Operation != admissionv1.Delete && req.Operation != admissionv1.Connect {
			t.Fatalf("review with undecodable pod allowed: %v", err)
		}
		switch req.Operation {
		case admissionv1.Create:
			if pod.HostNetwork {
				return
			}
			nsName := pod.Namespace
			if nsName == "" {
				nsName = req.Namespace
			}
			ns, err := lookup.Namespace(context.Background(), nsName)
			if err != nil {
				t.Fatalf("pod in unknown namespace %q allowed", nsName)
			}
			ix, _ := src.Snapshot(context.Background())
			if !policy.IsFrozen(pod.Annotations, ns, ix) {
				t.Fatalf("unfrozen pod allowed: %v", pod.Annotations)
			}
			frozen, err := policy.ReadFrozen(ns.Name, pod.Annotations)
			if err != nil {
				t.Fatalf("pod allowed whose frozen state does not read back: %v", err)
			}
			deny, _ := policy.Split(policy.CheckPod(frozen, policy.Subject{Namespace: ns}, ix))
			if len(deny) > 0 {
				t.Fatalf("pod allowed despite %v", deny)
			}
		case admissionv1.Update:
			old, err := ref.mirrorView(req.OldObject.Raw)
			if err != nil {
				t.Fatalf("update with undecodable old pod allowed: %v", err)
			}
			if !pod.HostNetwork && len(policy.ChangedGuardedKeys(old.Annotations, pod.Annotations)) > 0 {
				t.Fatalf("frozen annotation change allowed: %v -> %v", old.Annotations, pod.Annotations)
			}
		}
	})
}
