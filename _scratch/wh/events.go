package webhook

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
)

// Events records Kubernetes events for decisions a namespace owner or a
// security team should see after the fact. A nil *Events records nothing.
type Events struct {
	Recorder recorder.EventRecorder
}

// denied records a denial (or, in warn mode, what would have been denied)
// in the namespace concerned, where its owners read it with `kubectl get
// events -n NAMESPACE`. Dry-run requests record nothing (the webhook
// declares no side effects), nor do requests the API server cannot have
// sent (see screen). The note quotes at most a bounded prefix of anything
// the client wrote.
func (e *Events) denied(ctx context.Context, req admission.Request, namespace string, mode Enforcement, err error) {
	if e == nil || e.Recorder == nil || namespace == "" || (req.DryRun != nil && *req.DryRun) || untrusted(ctx) != "" {
		return
	}
	if req.Kind.Kind == "Namespace" && req.Operation == admissionv1.Create {
		// The namespace refused does not exist to hold the event; the
		// client has the denial.
		return
	}
	action := "Deny"
	if mode == Warn {
		action = "Warn"
	}
	what := req.Kind.Kind
	if req.SubResource != "" {
		what += " (" + req.SubResource + ")"
	}
	name := req.Name
	if name == "" {
		name = "<generated>"
	}
	e.Recorder.Eventf(namespaceRef(namespace), nil, corev1.EventTypeWarning, policy.ReasonDenied, action,
		"%s %s %s by %s: %s", req.Operation, what, policy.Excerpt(name), policy.Excerpt(req.UserInfo.Username), policy.Excerpt(err.Error()))
}
