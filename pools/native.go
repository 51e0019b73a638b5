// Package pools adapts the IPPool resources of each mode (poolguard's own,
// later Calico's) to the one pool model the policy works on. It is pure
// and light: the CNI plugin links it, and every import costs each plugin
// process start-up time. Package source serves the pools from informer
// caches for admission.
package pools

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// FromIPPool converts poolguard's IPPool to the policy's pool model. A pool
// that could never have passed validation (a bad CIDR or selector, written
// past the webhook) still comes back, named and Invalid with the reason
// (err says the same): never a default and never allowed, and a pod or
// namespace naming it is told that the pool is invalid and why, not that it
// does not exist.
func FromIPPool(p *v1alpha1.IPPool) (policy.Pool, error) {
	invalid := func(err error) (policy.Pool, error) {
		return policy.Pool{Name: p.Name, Invalid: err}, err
	}
	cidr, err := policy.ParsePoolCIDR(p.Spec.CIDR)
	if err != nil {
		return invalid(err)
	}
	nsSel, err := selector(p.Spec.NamespaceSelector)
	if err != nil {
		return invalid(fmt.Errorf("%w: namespaceSelector: %v", policy.ErrInvalidPool, err))
	}
	nodeSel, err := selector(p.Spec.NodeSelector)
	if err != nil {
		return invalid(fmt.Errorf("%w: nodeSelector: %v", policy.ErrInvalidPool, err))
	}
	return policy.Pool{
		Name:              p.Name,
		CIDR:              cidr,
		Disabled:          p.Spec.Disabled,
		Terminating:       p.DeletionTimestamp != nil,
		Manual:            p.Spec.AssignmentMode == v1alpha1.AssignmentManual,
		NamespaceSelector: nsSel,
		NodeSelector:      nodeSel,
	}, nil
}

// selector converts a label selector; nil or empty selects everything and
// is returned as nil so that the policy can say "every namespace".
func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0) {
		return nil, nil
	}
	return metav1.LabelSelectorAsSelector(s)
}
