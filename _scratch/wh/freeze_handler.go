package webhook

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
)

// freezeHandler serves PodFreezer, a typed admission.Defaulter, as a
// controller-runtime admission.Handler that reads only the pod's view
// (decodePodView) and patches only the annotations the freeze wrote.
// controller-runtime's generic WithDefaulter decodes the whole pod,
// re-encodes it and diffs it against the request, which cost several
// times the rest of the handler (BenchmarkPodHandlers) on every pod create
// in the cluster; the freeze reads six fields and knows exactly what it
// changed. Responses and panic recovery stay controller-runtime's.
type freezeHandler struct {
	freezer *PodFreezer
}

// newFreezeWebhook returns the mutating pod webhook.
func newFreezeWebhook(f *PodFreezer) *admission.Webhook {
	return (&admission.Webhook{Handler: freezeHandler{freezer: f}}).WithRecoverPanic(true)
}

// Handle freezes the pod and answers with a JSON patch of its annotations.
func (h freezeHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	pod, err := decodePodView(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	frozen, err := h.freezer.freeze(admission.NewContextWithRequest(ctx, req), pod)
	if err != nil {
		return responseFor(err)
	}
	if frozen == nil {
		return admission.Allowed("")
	}
	ops := freezePatch(pod.Annotations, *frozen)
	if len(ops) == 0 {
		return admission.Allowed("")
	}
	return admission.Patched("", ops...)
}

// frozenReason is the metric reason of a freeze: where each family's list
// came from.
func frozenReason(p policy.Provenance) string {
	return "frozen_" + string(p.IPv4) + "_" + string(p.IPv6)
}

// sortedGuardedKeys are the keys a freeze writes or removes, in the order
// their patch operations are written.
var sortedGuardedKeys = slices.Sorted(slices.Values(policy.GuardedKeys))

// freezePatch returns the JSON patch that applies frozen to the pod's
// annotations (before, which it does not change): the one a diff of the
// annotations before and after frozen.Apply would give, in a stable order
// (adds, then removes, each by key), computed from the few keys a freeze
// touches rather than by copying and diffing every annotation.
func freezePatch(before map[string]string, frozen policy.Frozen) []jsonpatch.JsonPatchOperation {
	after := frozen.Apply(nil) // the guarded keys the freeze sets, and their values
	if before == nil {
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", "/metadata/annotations", after)}
	}
	var ops []jsonpatch.JsonPatchOperation
	for _, k := range sortedGuardedKeys {
		if v, set := after[k]; set {
			if old, ok := before[k]; !ok || old != v {
				// "add" on an existing member replaces it (RFC 6902 §4.1).
				ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+escapePointer(k), v))
			}
		}
	}
	for _, k := range sortedGuardedKeys {
		if _, set := after[k]; !set {
			if _, ok := before[k]; ok {
				ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escapePointer(k), nil))
			}
		}
	}
	return ops
}

// pointerEscaper escapes a JSON pointer token (RFC 6901); built once, as
// building a Replacer costs more than using it.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return pointerEscaper.Replace(s)
}
