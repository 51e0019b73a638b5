// Package calico adapts Calico's IPPool resources to the policy's pool
// model, for Calico mode: Calico's CNI and IPAM allocate, and Calico's
// IPPools are the only source of truth. Calico stores them as
// projectcalico.org/v3 (its own v3 CRDs since v3.32, or served by its
// aggregated API server) or as crd.projectcalico.org/v1 (the classic
// Kubernetes datastore), with the same spec field names in both; pools are
// read as unstructured objects so that neither shape is compiled in. The
// fields are written from Calico's documented IPPool reference.
package calico

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/calico/selector"
)

// The two ways Calico serves IPPools, in the order poolguard prefers them:
// where projectcalico.org/v3 is served it is the API Calico's own tools
// write, and the crd.projectcalico.org/v1 objects behind an aggregated API
// server are its storage.
var (
	// GroupVersionV3 is Calico's API group: its v3 CRDs (v3.32 and later)
	// or its aggregated API server.
	GroupVersionV3 = schema.GroupVersion{Group: "projectcalico.org", Version: "v3"}
	// GroupVersionCRDv1 is the classic Kubernetes datastore.
	GroupVersionCRDv1 = schema.GroupVersion{Group: "crd.projectcalico.org", Version: "v1"}
	// PreferredVersions lists both, preferred first.
	PreferredVersions = []schema.GroupVersion{GroupVersionV3, GroupVersionCRDv1}
)

// Names in Calico's IPPool as documented.
const (
	// IPPoolKind and IPPoolResource name the IPPool in both groups.
	IPPoolKind     = "IPPool"
	IPPoolResource = "ippools"

	useWorkload        = "Workload"
	assignmentManual   = "Manual"
	conditionDisabled  = "Disabled"
	conditionStatusYes = "True"
)

// FromUnstructured converts a Calico IPPool to the policy's pool model.
// A pool whose CIDR does not parse is an error (left out, so naming it
// reads as unknown). A pool whose selector does not parse is returned
// with Invalid set: it can serve no pod, and naming it is refused with the
// parse error, never matched as if the selector selected everything.
func FromUnstructured(u *unstructured.Unstructured) (policy.Pool, error) {
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	cidrText, _, _ := unstructured.NestedString(spec, "cidr")
	cidr, err := policy.ParsePoolCIDR(cidrText)
	if err != nil {
		// Calico accepts a CIDR with host bits set and masks it.
		pfx, perr := parseLoose(cidrText)
		if perr != nil {
			return policy.Pool{}, fmt.Errorf("calico IPPool %q: %w", u.GetName(), err)
		}
		cidr = pfx
	}
	p := policy.Pool{Name: u.GetName(), CIDR: cidr, Terminating: u.GetDeletionTimestamp() != nil}
	p.Disabled, _, _ = unstructured.NestedBool(spec, "disabled")
	if disabledCondition(u) {
		p.Disabled = true
	}
	if mode, _, _ := unstructured.NestedString(spec, "assignmentMode"); mode == assignmentManual {
		p.Manual = true
	}
	if uses, found, _ := unstructured.NestedStringSlice(spec, "allowedUses"); found && !contains(uses, useWorkload) {
		p.NotForWorkloads = true
	}
	for _, f := range []struct {
		field string
		into  *policy.Selector
	}{{"namespaceSelector", &p.NamespaceSelector}, {"nodeSelector", &p.NodeSelector}} {
		text, _, _ := unstructured.NestedString(spec, f.field)
		if f.field == "namespaceSelector" && text == "" {
			// Calico before v3.31 has no namespaceSelector: the rule
			// may be stated in poolguard's annotation on the pool.
			text = u.GetAnnotations()[policy.AnnotationNamespaceSelector]
		}
		sel, err := selector.Parse(text)
		if err != nil {
			p.Invalid = fmt.Errorf("its %s %q does not parse: %w", f.field, policy.Excerpt(text), err)
			*f.into = matchNothing{}
			continue
		}
		if sel.String() != "all()" && sel.String() != "global()" {
			*f.into = Selector{sel}
		}
	}
	return p, nil
}

// disabledCondition reports Calico v3.32's Disabled status condition.
func disabledCondition(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == conditionDisabled && m["status"] == conditionStatusYes {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Selector is a Calico selector as a policy.Selector.
type Selector struct{ S selector.Selector }

// Matches evaluates the selector against a label set. Labels that are not
// a labels.Set (the policy passes sets) match nothing.
func (s Selector) Matches(l labels.Labels) bool {
	set, ok := l.(labels.Set)
	return ok && s.S.Matches(set)
}

// String renders the selector in Calico's language.
func (s Selector) String() string { return s.S.String() }

// matchNothing stands in for a selector that did not parse.
type matchNothing struct{}

func (matchNothing) Matches(labels.Labels) bool { return false }
func (matchNothing) String() string             { return "!all()" }
