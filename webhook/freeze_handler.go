package webhook

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// freezeHandler serves PodFreezer, a typed admission.Defaulter, as a
// controller-runtime admission.Handler that patches only the annotations the
// freeze wrote. controller-runtime's generic WithDefaulter re-encodes the
// whole pod and diffs it against the request, which costs three times the
// rest of the handler (BenchmarkPodHandlers) on every pod create in the
// cluster; the freeze knows exactly what it changed. Decoding, responses and
// panic recovery stay controller-runtime's.
type freezeHandler struct {
	freezer *PodFreezer
	decoder admission.Decoder
}

// newFreezeWebhook returns the mutating pod webhook.
func newFreezeWebhook(scheme *runtime.Scheme, f *PodFreezer) *admission.Webhook {
	return (&admission.Webhook{Handler: freezeHandler{freezer: f, decoder: admission.NewDecoder(scheme)}}).WithRecoverPanic(true)
}

// Handle freezes the pod and answers with a JSON patch of its annotations.
func (h freezeHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	pod := &corev1.Pod{}
	if err := h.decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	before := pod.Annotations
	if before != nil {
		before = maps.Clone(before)
	}
	if err := h.freezer.Default(admission.NewContextWithRequest(ctx, req), pod); err != nil {
		return responseFor(err)
	}
	ops := annotationPatch(before, pod.Annotations)
	if len(ops) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("", ops...)
}

// annotationPatch returns the JSON patch that turns the annotations before
// into after, in a stable order.
func annotationPatch(before, after map[string]string) []jsonpatch.JsonPatchOperation {
	if maps.Equal(before, after) {
		return nil
	}
	if before == nil {
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/metadata/annotations", after)}
	}
	var ops []jsonpatch.JsonPatchOperation
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if v, ok := before[k]; !ok || v != after[k] {
			// "add" on an existing member replaces it (RFC 6902 §4.1).
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+escapePointer(k), after[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok {
			ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escapePointer(k), nil))
		}
	}
	return ops
}

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
