package webhook

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/policy"
)

// Opting a namespace out (policy.LabelOptOut) disables protection, so the
// Helm chart ships a ValidatingAdmissionPolicy that lets only holders of
// verb OptOutVerb on namespaces in poolguard's API group, granted
// cluster-wide, add or change the label.
const (
	// OptOutVerb is the RBAC verb, on resource "namespaces" of group
	// ipam.poolguard.dev, that lets a user set policy.LabelOptOut.
	OptOutVerb = "opt-out"
)

// optOutRequirement keeps namespaces labelled policy.LabelOptOut=true out.
func optOutRequirement() metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: policy.LabelOptOut, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}}
}

// WithNamespaceOptOut adds the opt-out requirement to the namespaceSelector
// of every webhook that has one, in place, as the Helm chart renders them
// when optOut.enabled is true. Cluster-scoped IPPool webhooks have none and
// are left alone: a pool is not any namespace's to opt out of.
func WithNamespaceOptOut(m *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration) {
	// Webhooks may share one selector; each gets its own copy.
	add := func(s *metav1.LabelSelector) *metav1.LabelSelector {
		if s == nil {
			return nil
		}
		s = s.DeepCopy()
		s.MatchExpressions = append(s.MatchExpressions, optOutRequirement())
		return s
	}
	for i := range m.Webhooks {
		m.Webhooks[i].NamespaceSelector = add(m.Webhooks[i].NamespaceSelector)
	}
	for i := range v.Webhooks {
		if v.Webhooks[i].Name == HookNamespaceSubresources {
			// Matched against the stored labels: see Configurations.
			continue
		}
		v.Webhooks[i].NamespaceSelector = add(v.Webhooks[i].NamespaceSelector)
	}
}
