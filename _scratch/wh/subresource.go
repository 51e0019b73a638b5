package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
)

// PodSubresourceValidator refuses CREATEs on pod subresources whose object
// carries a frozen annotation. The API server copies a Binding's
// annotations onto its pod (pods/binding), so a Binding naming a pool
// would rewrite what the pod was frozen to without any pod UPDATE being
// admitted. Only the object's metadata is read: a Binding, an Eviction or a
// subresource added in a later release decode alike.
type PodSubresourceValidator struct {
	Enforcer
}

// Handle answers one subresource CREATE.
func (v PodSubresourceValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	ctx = admission.NewContextWithRequest(ctx, req)
	op := string(req.Operation)
	if req.Operation != admissionv1.Create || req.SubResource == "" {
		return admission.Allowed("")
	}
	var meta metav1.PartialObjectMetadata
	if err := json.Unmarshal(req.Object.Raw, &meta); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the %s object: %w", req.SubResource, err))
	}
	// The metric's resource label is the subresource only when it is one
	// the API server serves: anyone who reaches the port could otherwise
	// mint label values.
	resource := "pods/other"
	switch req.SubResource {
	case "binding", "eviction":
		resource = "pods/" + req.SubResource
	}
	var errs field.ErrorList
	for _, k := range policy.GuardedKeys {
		if val, ok := meta.Annotations[k]; ok {
			errs = append(errs, field.Forbidden(annotationPath(k), fmt.Sprintf(
				"a pods/%s request may not carry %s (value %q): the API server would copy it onto pod %s. "+policy.MsgImmutable,
				req.SubResource, k, policy.Excerpt(val), policy.Excerpt(req.Name), policy.AnnotationProvenance)))
		}
	}
	if len(errs) == 0 {
		record(ctx, resource, op, outcomeAllowed, "ok")
		return admission.Allowed("")
	}
	warns, err := v.deny(ctx, resource, req.Namespace, policy.Reason(policy.ErrImmutable), nil,
		apierrors.NewInvalid(podGK, req.Name, errs))
	if err == nil {
		return admission.Allowed("").WithWarnings(warns...)
	}
	return responseFor(err).WithWarnings(warns...)
}

// responseFor turns an API status error into a denial that keeps its code,
// reason and field causes, as controller-runtime's typed validators do.
func responseFor(err error) admission.Response {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		s := status.Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &s}}
	}
	return admission.Denied(err.Error())
}
