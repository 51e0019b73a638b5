package webhook

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/source"
)

var namespaceGK = corev1.SchemeGroupVersion.WithKind("Namespace").GroupKind()

// NamespaceValidator checks a namespace's default pools: well formed, known,
// of the right family, and allowed for the namespace. A disabled pool is a
// warning: the default may outlive a temporary disable, but new pods will be
// refused meanwhile.
type NamespaceValidator struct {
	Enforcer
	Pools source.Source
}

var _ admission.Validator[*corev1.Namespace] = &NamespaceValidator{}

// ValidateCreate checks a new namespace.
func (v *NamespaceValidator) ValidateCreate(ctx context.Context, ns *corev1.Namespace) (admission.Warnings, error) {
	return v.check(ctx, ns, nil)
}

// ValidateUpdate checks a namespace whose defaults or labels changed; an
// update that changes neither is allowed as is, so that an unrelated edit
// never fails because a pool changed since the default was set.
func (v *NamespaceValidator) ValidateUpdate(ctx context.Context, oldNS, newNS *corev1.Namespace) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	if newNS.Labels[policy.LabelOptOut] == "true" {
		// What the namespaceSelector does for the namespace itself; a
		// subresource write is matched against the stored labels, so the
		// opt-out its new labels keep or set is honoured here.
		record(ctx, "namespaces", string(req.Operation), outcomeAllowed, "opted_out")
		return nil, nil
	}
	defaultsChanged := !maps.Equal(pick(oldNS.Annotations, policy.DefaultKeys), pick(newNS.Annotations, policy.DefaultKeys))
	if !defaultsChanged && maps.Equal(oldNS.Labels, newNS.Labels) {
		record(ctx, "namespaces", string(req.Operation), outcomeAllowed, "unchanged")
		return nil, nil
	}
	warns, err := v.check(ctx, newNS, nil)
	if err == nil && defaultsChanged {
		warns = append(warns, "existing pods keep the pools frozen at their creation; only pods created from now on use the new default")
	}
	return warns, err
}

// ValidateDelete allows deletes.
func (v *NamespaceValidator) ValidateDelete(context.Context, *corev1.Namespace) (admission.Warnings, error) {
	return nil, nil
}

func (v *NamespaceValidator) check(ctx context.Context, obj *corev1.Namespace, warns admission.Warnings) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	op := string(req.Operation)
	if _, v4 := obj.Annotations[policy.AnnotationIPv4Pools]; !v4 {
		if _, v6 := obj.Annotations[policy.AnnotationIPv6Pools]; !v6 {
			record(ctx, "namespaces", op, outcomeAllowed, "no_default")
			return warns, nil
		}
	}
	index, err := v.Pools.Snapshot(ctx)
	if err != nil {
		record(ctx, "namespaces", op, outcomeError, "pool_lookup")
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	ns := policy.Namespace{Name: obj.Name, Labels: obj.Labels, Annotations: obj.Annotations}
	deny, warn := policy.Split(policy.CheckNamespace(ns, index))
	warns = append(warns, warnings(warn)...)
	if len(deny) == 0 {
		record(ctx, "namespaces", op, outcomeAllowed, "ok")
		return warns, nil
	}
	return v.deny(ctx, "namespaces", obj.Name, firstReason(deny), warns, invalid(namespaceGK, obj.Name, deny))
}

// pick returns the entries of m under keys.
func pick(m map[string]string, keys []string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}
