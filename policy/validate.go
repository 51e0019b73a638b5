package policy

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
)

// Violation is one thing wrong with a pool annotation. Err wraps one of the
// sentinel errors; Warning violations are reported but do not deny.
type Violation struct {
	// Key is the annotation key.
	Key string
	// Value is the annotation's value as it was checked, cut to
	// MaxQuotedBytes (see Excerpt): it is repeated to clients and in events.
	Value string
	// Source says where the value came from (pod or namespace).
	Source Source
	// Namespace is the namespace the value was copied from, when Source is
	// SourceNamespace.
	Namespace string
	// Err says what is wrong; it wraps a sentinel error.
	Err error
	// Warning marks violations that are reported but allowed.
	Warning bool
}

// Error renders the violation for a person: key, value, where it came from,
// and why.
func (v Violation) Error() string {
	from := ""
	if v.Source == SourceNamespace {
		from = fmt.Sprintf(" (copied from namespace %q)", v.Namespace)
	}
	return fmt.Sprintf("annotation %s=%s%s: %v", v.Key, v.Value, from, v.Err)
}

// Unwrap returns the underlying error so errors.Is finds the sentinel.
func (v Violation) Unwrap() error { return v.Err }

// Subject says who a list is checked for.
type Subject struct {
	// Namespace is the namespace whose pods would draw from the pools.
	Namespace Namespace
	// NodeLabels are the labels of the node the pod is bound to, or nil
	// when it is not bound yet (node selectors are then checked by the
	// allocator on the node).
	NodeLabels map[string]string
	// DisabledIsWarning turns disabled pools into warnings: a namespace
	// default may name a pool that is disabled for now.
	DisabledIsWarning bool
}

// CheckList checks one pool annotation value against the pools: parsed,
// every pool known, of the family of the key, enabled, and allowed for the
// namespace (and node, when known). It returns every violation, not just the
// first, so one round trip tells a person everything to fix.
func CheckList(fam Family, value string, subject Subject, pools *Index) []Violation {
	key := fam.AnnotationKey()
	viol := func(err error) Violation {
		return Violation{Key: key, Value: Excerpt(value), Err: err}
	}
	refs, err := ParsePoolList(value)
	if err != nil {
		return []Violation{viol(err)}
	}
	var out []Violation
	nsLabels := labels.Set(subject.Namespace.SelectorLabels())
	seen := make(map[string]string, len(refs))
	for _, ref := range refs {
		p, ok := pools.Lookup(ref)
		if !ok {
			out = append(out, viol(fail(ErrUnknownPool, "pool %q does not exist", ref)))
			continue
		}
		if prev, dup := seen[p.Name]; dup {
			out = append(out, viol(fail(ErrMalformed, "%q and %q are the same pool", prev, ref)))
			continue
		}
		seen[p.Name] = ref
		// A pool whose range does not parse has no family: it is
		// reported invalid below, with the reason.
		if p.CIDR.IsValid() && p.Family() != fam {
			out = append(out, viol(fail(ErrWrongFamily, "pool %q (%s) is %s, but %s takes %s pools", p.Name, p.CIDR, p.Family(), key, fam)))
			continue
		}
		if p.Invalid != nil {
			v := viol(fail(ErrInvalidPool, "pool %q cannot be used: %v", p.Name, p.Invalid))
			v.Warning = subject.DisabledIsWarning
			out = append(out, v)
			continue
		}
		if p.NotForWorkloads {
			out = append(out, viol(fail(ErrForbiddenPool, "pool %q does not serve workloads", p.Name)))
			continue
		}
		if !p.AllowsNamespace(nsLabels) {
			out = append(out, viol(fail(ErrForbiddenPool, "pool %q does not allow namespace %q (its namespaceSelector is %q)", p.Name, subject.Namespace.Name, p.NamespaceSelector)))
			continue
		}
		if subject.NodeLabels != nil && !p.AllowsNode(subject.NodeLabels) {
			out = append(out, viol(fail(ErrNodeNotAllowed, "pool %q does not allow the pod's node (its nodeSelector is %q)", p.Name, p.NodeSelector)))
			continue
		}
		if p.Disabled || p.Terminating {
			why := "disabled"
			if p.Terminating {
				why = "being deleted"
			}
			v := viol(fail(ErrDisabledPool, "pool %q is %s and hands out no new addresses", p.Name, why))
			v.Warning = subject.DisabledIsWarning
			out = append(out, v)
		}
	}
	return out
}

// CheckPod checks a frozen pod's pool annotations. Lists copied from the
// namespace are checked too: the namespace may have been annotated before
// poolguard was installed, or a pool may have changed since.
func CheckPod(frozen Frozen, subject Subject, pools *Index) []Violation {
	var out []Violation
	for _, fam := range Families {
		v := frozen.Value(fam)
		if v == nil {
			continue
		}
		for _, viol := range CheckList(fam, *v, subject, pools) {
			viol.Source = frozen.Provenance.For(fam)
			if viol.Source == SourceNamespace {
				viol.Namespace = subject.Namespace.Name
			}
			out = append(out, viol)
		}
	}
	return out
}

// CheckNamespace checks a namespace's default pool annotations. Disabled
// pools are warnings: a namespace may keep naming a pool that is disabled
// for a while, but its new pods will be refused.
func CheckNamespace(ns Namespace, pools *Index) []Violation {
	subject := Subject{Namespace: ns, DisabledIsWarning: true}
	var out []Violation
	for _, fam := range Families {
		v, ok := ns.Annotations[fam.AnnotationKey()]
		if !ok {
			continue
		}
		// Source stays empty: the list is the namespace's own.
		out = append(out, CheckList(fam, v, subject, pools)...)
	}
	return out
}

// Split separates denying violations from warnings.
func Split(vs []Violation) (deny, warn []Violation) {
	for _, v := range vs {
		if v.Warning {
			warn = append(warn, v)
		} else {
			deny = append(deny, v)
		}
	}
	return deny, warn
}
