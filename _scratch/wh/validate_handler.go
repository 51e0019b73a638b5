package webhook

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// validateHandler serves PodValidator, a typed admission.Validator, as a
// controller-runtime admission.Handler that reads only the pod's view
// (decodePodView) where controller-runtime's generic WithValidator decodes
// the whole corev1.Pod, which cost more than the rest of the request
// (BenchmarkPodHandlers). It answers as WithValidator does: the same
// operations, a 400 for an object that cannot be read, a denial that keeps
// an API status's code, reason and causes, and the warnings either way.
type validateHandler struct {
	validator *PodValidator
}

// newValidateWebhook returns the validating pod webhook.
func newValidateWebhook(v *PodValidator) *admission.Webhook {
	return (&admission.Webhook{Handler: validateHandler{validator: v}}).WithRecoverPanic(true)
}

// Handle validates one pod request.
func (h validateHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req)
	var warns admission.Warnings
	var err error
	switch req.Operation {
	case admissionv1.Connect:
	case admissionv1.Create:
		pod, derr := decodePodView(req.Object.Raw)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		warns, err = h.validator.validateCreate(ctx, pod)
	case admissionv1.Update:
		pod, derr := decodePodView(req.Object.Raw)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, derr)
		}
		old, derr := decodePodView(req.OldObject.Raw)
		if derr != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("the old object: %w", derr))
		}
		warns, err = h.validator.validateUpdate(ctx, old, pod)
	case admissionv1.Delete:
		// Not registered for deletes; still read the object, as
		// WithValidator does, so a malformed one is answered alike.
		if _, derr := decodePodView(req.OldObject.Raw); derr != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("the old object: %w", derr))
		}
	default:
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unknown operation %q", req.Operation))
	}
	if err != nil {
		return responseFor(err).WithWarnings(warns...)
	}
	return admission.Allowed("").WithWarnings(warns...)
}
