package webhook

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/source"
)

var podGK = corev1.SchemeGroupVersion.WithKind("Pod").GroupKind()

var podGR = corev1.SchemeGroupVersion.WithResource("pods").GroupResource()

// PodFreezer is the mutating webhook: on pod CREATE it writes the effective
// pool lists and the provenance onto the pod, pinning each named pool to
// its current range.
type PodFreezer struct {
	Lookup Lookup
	Pools  source.Source
	// Rules are the mode's freeze rules (Calico mode pins the defaults).
	Rules policy.Rules
}

var _ admission.Defaulter[*corev1.Pod] = &PodFreezer{}

// Default freezes the pod's pools. It changes nothing but the pod's
// annotations. It decides as the registered handler does (freezeHandler),
// on the pod's view.
func (f *PodFreezer) Default(ctx context.Context, pod *corev1.Pod) error {
	frozen, err := f.freeze(ctx, viewOf(pod))
	if err != nil || frozen == nil {
		return err
	}
	pod.Annotations = frozen.Apply(pod.Annotations)
	return nil
}

// freeze computes what the pod is frozen to, or nil when it is left as it
// is (hostNetwork), and counts the decision. The admission request is in
// ctx. It writes nothing: the caller applies the result.
func (f *PodFreezer) freeze(ctx context.Context, pod podView) (*policy.Frozen, error) {
	req, _ := admission.RequestFromContext(ctx)
	op := string(req.Operation)
	if pod.HostNetwork {
		record(ctx, "pods", op, outcomeAllowed, "host_network")
		return nil, nil
	}
	ns, err := f.Lookup.Namespace(ctx, podNamespace(pod, req))
	if err != nil {
		record(ctx, "pods", op, outcomeError, "namespace_lookup")
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	index, err := f.Pools.Snapshot(ctx)
	if err != nil {
		record(ctx, "pods", op, outcomeError, "pool_lookup")
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	var nodeLabels map[string]string
	if f.Rules.PinDefaults && pod.NodeName != "" {
		// Bound at creation: the defaults pinned may include pools whose
		// nodeSelector selects this node. Unreadable, it pins fewer.
		nodeLabels, _ = f.Lookup.NodeLabels(ctx, pod.NodeName)
	}
	frozen := f.Rules.Freeze(pod.Annotations, ns, index, nodeLabels)
	record(ctx, "pods", op, outcomeMutated, frozenReason(frozen.Provenance))
	return &frozen, nil
}

// podNamespace is the pod's namespace; a pod created through a namespaced
// URL may carry it only in the request.
func podNamespace(pod podView, req admission.Request) string {
	if pod.Namespace != "" {
		return pod.Namespace
	}
	return req.Namespace
}

// podName names a pod in messages, including generateName pods that have no
// name yet.
func podName(pod podView, req admission.Request) string {
	switch {
	case pod.Name != "":
		return pod.Name
	case req.Name != "":
		return req.Name
	case pod.GenerateName != "":
		return pod.GenerateName + "<generated>"
	}
	return "<unnamed>"
}

// PodValidator is the validating webhook for pods: CREATE checks the frozen
// pools against the pools and the namespace's rights; UPDATE (on pods and
// every subresource that carries metadata) refuses any change to the frozen
// annotations.
type PodValidator struct {
	Enforcer
	Lookup Lookup
	Pools  source.Source
	// Rules are the mode's freeze rules, as the freezer's.
	Rules policy.Rules
}

var _ admission.Validator[*corev1.Pod] = &PodValidator{}

// ValidateCreate checks a new, frozen pod. It decides as the registered
// handler does (validateHandler), on the pod's view.
func (v *PodValidator) ValidateCreate(ctx context.Context, pod *corev1.Pod) (admission.Warnings, error) {
	return v.validateCreate(ctx, viewOf(pod))
}

// ValidateUpdate refuses any change to the frozen annotations.
func (v *PodValidator) ValidateUpdate(ctx context.Context, oldPod, newPod *corev1.Pod) (admission.Warnings, error) {
	return v.validateUpdate(ctx, viewOf(oldPod), viewOf(newPod))
}

// ValidateDelete allows every delete: the webhook is not registered for it.
func (v *PodValidator) ValidateDelete(context.Context, *corev1.Pod) (admission.Warnings, error) {
	return nil, nil
}

// validateCreate checks a new, frozen pod; the admission request is in
// ctx.
func (v *PodValidator) validateCreate(ctx context.Context, pod podView) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	op := string(req.Operation)
	if pod.HostNetwork {
		// The configurations' match conditions keep hostNetwork pods away;
		// a direct caller gets the same answer.
		record(ctx, "pods", op, outcomeAllowed, "host_network")
		return nil, nil
	}
	ns, err := v.Lookup.Namespace(ctx, podNamespace(pod, req))
	if err != nil {
		record(ctx, "pods", op, outcomeError, "namespace_lookup")
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	index, err := v.Pools.Snapshot(ctx)
	if err != nil {
		record(ctx, "pods", op, outcomeError, "pool_lookup")
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	subject := policy.Subject{Namespace: ns}
	var warns admission.Warnings
	if pod.NodeName != "" {
		// Bound at creation (static pods, some schedulers): the node is
		// known, so its selector can be checked now rather than on the node.
		if nodeLabels, err := v.Lookup.NodeLabels(ctx, pod.NodeName); err == nil {
			subject.NodeLabels = nodeLabels
		} else {
			warns = append(warns, fmt.Sprintf("node %q could not be read (%v); pool nodeSelectors will be checked on the node", pod.NodeName, err))
		}
	}
	frozen, err := v.Rules.CheckFrozen(pod.Annotations, ns, index, v.freezeNode(subject))
	if errors.Is(err, policy.ErrNamespaceChanged) {
		// Not a missing webhook: the namespace's default moved between
		// the two calls. A conflict, which controllers retry.
		return v.deny(ctx, "pods", ns.Name, policy.Reason(policy.ErrNotFrozen), warns, apierrors.NewConflict(podGR, podName(pod, req), err))
	}
	if err != nil {
		return v.deny(ctx, "pods", ns.Name, policy.Reason(policy.ErrNotFrozen), warns, apierrors.NewInvalid(podGK, podName(pod, req), field.ErrorList{
			field.Invalid(annotationPath(policy.AnnotationProvenance), policy.Excerpt(pod.Annotations[policy.AnnotationProvenance]),
				fmt.Sprintf(policy.MsgNotFrozen, policy.AnnotationProvenance)),
		}))
	}
	deny, warn := policy.Split(policy.CheckPod(frozen, subject, index))
	warns = append(warns, warnings(warn)...)
	warns = append(warns, v.suspicious(frozen, ns, index)...)
	if len(deny) > 0 {
		return v.deny(ctx, "pods", ns.Name, firstReason(deny), warns, invalid(podGK, podName(pod, req), deny))
	}
	record(ctx, "pods", op, outcomeAllowed, "ok")
	return warns, nil
}

// validateUpdate refuses any change to the frozen annotations; the
// admission request is in ctx.
func (v *PodValidator) validateUpdate(ctx context.Context, oldPod, newPod podView) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	if newPod.HostNetwork {
		record(ctx, "pods", string(req.Operation), outcomeAllowed, "host_network")
		return nil, nil
	}
	changed := policy.ChangedGuardedKeys(oldPod.Annotations, newPod.Annotations)
	if len(changed) == 0 {
		record(ctx, "pods", string(req.Operation), outcomeAllowed, "ok")
		return nil, nil
	}
	errs := make(field.ErrorList, 0, len(changed))
	for _, k := range changed {
		errs = append(errs, field.Forbidden(annotationPath(k), fmt.Sprintf(policy.MsgImmutable, policy.AnnotationProvenance)))
	}
	return v.deny(ctx, "pods", podNamespace(newPod, req), policy.Reason(policy.ErrImmutable), nil, apierrors.NewInvalid(podGK, podName(newPod, req), errs))
}

// freezeNode is the node the freezer saw: only Calico's rules read it.
func (v *PodValidator) freezeNode(s policy.Subject) map[string]string {
	if !v.Rules.PinDefaults {
		return nil
	}
	return s.NodeLabels
}

// suspicious returns warnings for pods that are allowed but probably not
// what their author meant.
func (v *PodValidator) suspicious(frozen policy.Frozen, ns policy.Namespace, index *policy.Index) admission.Warnings {
	var out admission.Warnings
	nsLabels := ns.SelectorLabels()
	for _, fam := range policy.Families {
		key := fam.AnnotationKey()
		switch frozen.Provenance.For(fam) {
		case policy.SourcePod:
			if nsVal, ok := ns.Annotations[key]; ok && nsVal != *frozen.Value(fam) {
				out = append(out, fmt.Sprintf("the pod's %s=%s overrides namespace %q's default %s", key, *frozen.Value(fam), ns.Name, nsVal))
			}
		case policy.SourceDefault:
			hasFamily := false
			for _, p := range index.All() {
				if p.Family() == fam {
					hasFamily = true
					break
				}
			}
			defaults := index.Defaults(fam, nsLabels)
			if hasFamily && len(defaults) == 0 {
				out = append(out, fmt.Sprintf("no usable Automatic %s pool serves namespace %q: a pod that names no %s pool will get no %s address", fam, ns.Name, fam, fam))
			}
			if v.Rules.PinDefaults && len(defaults) > 0 && frozen.Value(fam) == nil {
				out = append(out, fmt.Sprintf("the %s default pools of namespace %q all have a nodeSelector, which Calico ignores for a pool a pod names: this pod's %s pools are not pinned, and a default its namespace gains later would apply when its sandbox is recreated; name the pools on the pod to pin them", fam, ns.Name, fam))
			}
		}
	}
	return out
}
