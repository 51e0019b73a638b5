package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// screen marks requests that the API server, routing through poolguard's
// own configurations, would never send: an AdmissionReview without a UID,
// or one about a namespace the configurations exclude by name (opted-out
// namespaces are left out by label, which the screen does not read: a
// forged review about one still counts). Anyone who can reach
// the webhook's port can send such a request. It is still answered (the
// answer reveals nothing the policy does not), but it records no Event and
// moves no metric, so it cannot write text of its sender's choosing into a
// namespace's events or trip an alert. A forged request about an included
// namespace cannot be told apart this way: authenticating the API server
// with a client certificate (--client-ca-file) is what closes that.
type screen struct {
	// excluded are the namespaces the configurations' namespaceSelectors
	// leave out.
	excluded map[string]bool
	next     admission.Handler
}

// untrustedKey carries why a request is not genuine.
type untrustedKey struct{}

// untrusted returns why the request in ctx cannot be a genuine admission
// call, or "" when it may be.
func untrusted(ctx context.Context) string {
	why, _ := ctx.Value(untrustedKey{}).(string)
	return why
}

// Handle marks implausible requests and hands every request on.
func (s screen) Handle(ctx context.Context, req admission.Request) admission.Response {
	if why := s.implausible(req); why != "" {
		ctx = context.WithValue(ctx, untrustedKey{}, why)
	}
	return s.next.Handle(ctx, req)
}

func (s screen) implausible(req admission.Request) string {
	if req.UID == "" {
		return "the AdmissionReview has no request UID"
	}
	ns := req.Namespace
	if req.Kind.Group == "" && req.Kind.Kind == "Namespace" {
		// A namespace's own requests are selected by its own labels.
		ns = req.Name
	}
	if ns != "" && s.excluded[ns] {
		return fmt.Sprintf("namespace %q is excluded from poolguard's webhooks", ns)
	}
	return ""
}

// namespaceRef is the object a namespace's events are recorded on: the
// namespace, referred to from inside itself, so that the event lands in the
// namespace where its owners can read it (`kubectl get events -n NAME`);
// the API server stores events about cluster-scoped objects in `default`,
// which namespace owners cannot read.
func namespaceRef(name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: name, Namespace: name}
}
