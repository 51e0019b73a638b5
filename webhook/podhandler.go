package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// The pod handlers answer every pod CREATE in the cluster, so they do the
// same as controller-runtime's admission.WithDefaulter and WithValidator
// for *corev1.Pod, minus the two costs that dominated them (test/bench):
// decoding the pod through the scheme's deserializer, which reads the whole
// JSON twice (once to sniff its kind), and answering a freeze by
// re-encoding the pod and diffing it with the original, where poolguard
// knows which annotations it changed. Responses are the same.

// mutatePodWebhook serves PodFreezer.Default.
func mutatePodWebhook(f *PodFreezer) *admission.Webhook {
	return (&admission.Webhook{Handler: &podMutator{freezer: f}}).WithRecoverPanic(true)
}

// validatePodWebhook serves PodValidator.
func validatePodWebhook(v *PodValidator) *admission.Webhook {
	return (&admission.Webhook{Handler: &podValidatorHandler{validator: v}}).WithRecoverPanic(true)
}

type podMutator struct{ freezer *PodFreezer }

// Handle freezes the pod and patches only the annotations Default changed.
// Default may change nothing but annotations (it is the freeze).
func (h *podMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation == admissionv1.Delete {
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, Result: &metav1.Status{Code: http.StatusOK}}}
	}
	ctx = admission.NewContextWithRequest(ctx, req)
	if len(req.Object.Raw) == 0 {
		return admission.Errored(http.StatusBadRequest, errNoContent)
	}
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	before := maps.Clone(pod.Annotations)
	if err := h.freezer.Default(ctx, pod); err != nil {
		return errorResponse(err, nil)
	}
	ops := annotationPatch(before, pod.Annotations)
	if len(ops) == 1 && ops[0].Path == annotationsPath && reflect.DeepEqual(pod.ObjectMeta, metav1.ObjectMeta{Annotations: pod.Annotations}) {
		// A pod without metadata (never one from an API server): adding
		// under /metadata would not apply, so add the whole object.
		ops[0] = jsonpatch.NewOperation("add", "/metadata", map[string]any{"annotations": pod.Annotations})
	}
	if len(ops) == 0 {
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true}}
	}
	pt := admissionv1.PatchTypeJSONPatch
	return admission.Response{Patches: ops, AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, PatchType: &pt}}
}

type podValidatorHandler struct{ validator *PodValidator }

// Handle dispatches on the operation as controller-runtime's validator
// wrapper does.
func (h *podValidatorHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req)
	var warns admission.Warnings
	var err error
	switch req.Operation {
	case admissionv1.Connect:
	case admissionv1.Create:
		if len(req.Object.Raw) == 0 {
			return admission.Errored(http.StatusBadRequest, errNoContent)
		}
		pod, derr := decodePod(req.Object.Raw)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		warns, err = h.validator.ValidateCreate(ctx, pod)
	case admissionv1.Update:
		pod, derr := decodePod(req.Object.Raw)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		old, derr := decodePod(req.OldObject.Raw)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		warns, err = h.validator.ValidateUpdate(ctx, old, pod)
	case admissionv1.Delete:
		pod, derr := decodePod(req.OldObject.Raw)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		warns, err = h.validator.ValidateDelete(ctx, pod)
	default:
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unknown operation %q", req.Operation))
	}
	if err != nil {
		return errorResponse(err, warns)
	}
	return admission.Allowed("").WithWarnings(warns...)
}

// errorResponse turns a handler's error into a refusal: an API status
// (Invalid, ServiceUnavailable) as is, anything else as a plain denial.
func errorResponse(err error, warns admission.Warnings) admission.Response {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		status := st.Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}.WithWarnings(warns...)
	}
	return admission.Denied(err.Error()).WithWarnings(warns...)
}

var errNoContent = errors.New("there is no content to decode")

// decodePod decodes a pod as the scheme's deserializer would: the same
// case-sensitive JSON decoder with integers preserved, the same refusal of
// another apiVersion or kind, the same acceptance of neither. It reads
// the bytes once.
func decodePod(raw []byte) (*corev1.Pod, error) {
	if len(raw) == 0 {
		return nil, errNoContent
	}
	pod := &corev1.Pod{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		return nil, err
	}
	if (pod.APIVersion != "" && pod.APIVersion != "v1") || (pod.Kind != "" && pod.Kind != "Pod") {
		return nil, fmt.Errorf("object is apiVersion %q kind %q, not a v1 Pod", pod.APIVersion, pod.Kind)
	}
	pod.APIVersion, pod.Kind = "v1", "Pod"
	return pod, nil
}

// annotationPatch returns the JSON patch that turns annotations before into
// after, in key order: one operation per added, changed or removed key, or
// one adding the whole map when the pod had none.
func annotationPatch(before, after map[string]string) []jsonpatch.JsonPatchOperation {
	const base = annotationsPath
	if before == nil {
		if len(after) == 0 {
			return nil
		}
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", base, after)}
	}
	var ops []jsonpatch.JsonPatchOperation
	for _, k := range slices.Sorted(maps.Keys(after)) {
		path := base + "/" + escapePointer(k)
		if old, ok := before[k]; !ok {
			ops = append(ops, jsonpatch.NewOperation("add", path, after[k]))
		} else if old != after[k] {
			ops = append(ops, jsonpatch.NewOperation("replace", path, after[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok {
			ops = append(ops, jsonpatch.NewOperation("remove", base+"/"+escapePointer(k), nil))
		}
	}
	return ops
}

const annotationsPath = "/metadata/annotations"

// pointerEscaper escapes a map key for a JSON pointer (RFC 6901).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapePointer(k string) string { return pointerEscaper.Replace(k) }
