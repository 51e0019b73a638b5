package webhook

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
)

// Enforcement says what a violation does.
type Enforcement string

const (
	// Enforce denies violations.
	Enforce Enforcement = "enforce"
	// Warn admits violations with an admission warning, counts them and
	// records an event: the mode for rolling poolguard out on a live cluster.
	Warn Enforcement = "warn"
)

// ParseEnforcement parses the --enforcement flag.
func ParseEnforcement(s string) (Enforcement, error) {
	switch Enforcement(s) {
	case Enforce, Warn:
		return Enforcement(s), nil
	}
	return "", fmt.Errorf("enforcement %q: must be %q or %q", s, Enforce, Warn)
}

// warnPrefix starts every warning that stands for a denial in warn mode, so
// that people can grep for what enforcement would refuse.
const warnPrefix = "poolguard would deny this request in enforce mode: "

// annotationPath is the field path of an annotation.
func annotationPath(key string) *field.Path {
	return field.NewPath("metadata", "annotations").Key(key)
}

// invalid turns denying violations into the API's "Invalid" status, one
// field error per violation, so kubectl prints each with its key and value.
func invalid(gk schema.GroupKind, name string, vs []policy.Violation) error {
	errs := make(field.ErrorList, 0, len(vs))
	for _, v := range vs {
		msg := v.Err.Error()
		if v.Source == policy.SourceNamespace {
			msg = fmt.Sprintf("%s (this list was copied from namespace %q's default)", msg, v.Namespace)
		}
		switch {
		case errors.Is(v.Err, policy.ErrForbiddenPool), errors.Is(v.Err, policy.ErrNodeNotAllowed):
			errs = append(errs, field.Forbidden(annotationPath(v.Key), msg))
		default:
			errs = append(errs, field.Invalid(annotationPath(v.Key), v.Value, msg))
		}
	}
	return apierrors.NewInvalid(gk, name, errs)
}

// warnings renders warning violations.
func warnings(vs []policy.Violation) admission.Warnings {
	out := make(admission.Warnings, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Error())
	}
	return out
}

// firstReason is the metric reason of a list of violations.
func firstReason(vs []policy.Violation) string {
	if len(vs) == 0 {
		return "none"
	}
	return policy.Reason(vs[0].Err)
}

// Enforcer applies the enforcement mode to denials and records them.
type Enforcer struct {
	// Mode is Enforce or Warn.
	Mode Enforcement
	// Events records denials; nil records nothing.
	Events *Events
}

// deny returns a denial: in enforce mode the error, in warn mode an
// admission warning and no error. Either way it is counted and recorded.
func (e Enforcer) deny(ctx context.Context, resource, namespace, reason string, warns admission.Warnings, err error) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	op := string(req.Operation)
	e.Events.denied(ctx, req, namespace, e.Mode, err)
	if e.Mode == Warn {
		record(ctx, resource, op, outcomeWarned, reason)
		return append(warns, warnPrefix+err.Error()), nil
	}
	record(ctx, resource, op, outcomeDenied, reason)
	return warns, err
}
