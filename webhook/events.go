package webhook

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// on the namespace, where kubectl describe shows it to its owners. Dry-run
// requests record nothing: the webhook declares no side effects.
func (e *Events) denied(_ context.Context, req admission.Request, namespace string, mode Enforcement, err error) {
	if e == nil || e.Recorder == nil || namespace == "" || (req.DryRun != nil && *req.DryRun) {
		return
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	action := "Deny"
	if mode == Warn {
		action = "Warn"
	}
	e.Recorder.Eventf(ns, nil, corev1.EventTypeWarning, policy.ReasonDenied, action,
		"%s %s by %s: %v", req.Operation, req.Kind.Kind, req.UserInfo.Username, err)
}
