package poolctl

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"poolguard.dev/poolguard/policy"
)

// PoolVerdict says whether a pod may draw from one pool, and why not.
type PoolVerdict struct {
	// Ref is the list entry that named the pool (a name or a CIDR), or the
	// pool's name for a default pool.
	Ref string `json:"ref"`
	// Pool and CIDR are the pool's, when it exists.
	Pool string `json:"pool,omitempty"`
	CIDR string `json:"cidr,omitempty"`
	// Allowed: the pod may draw from the pool (Why may still add a
	// condition, e.g. a nodeSelector decided on the node).
	Allowed bool `json:"allowed"`
	// Why says why not, or on which condition.
	Why string `json:"why,omitempty"`
}

// FamilyPools is one address family's pools: where the decision comes
// from and a verdict for every pool named or defaulted.
type FamilyPools struct {
	Family string        `json:"family"`
	Source policy.Source `json:"source,omitempty"`
	// List is the frozen annotation's value; absent when the family uses
	// the default pools chosen on the node.
	List  *string       `json:"list,omitempty"`
	Pools []PoolVerdict `json:"pools"`
	// Note says what the family comes to when no pool serves it, or why
	// the list cannot be read.
	Note string `json:"note,omitempty"`
}

// familyPools explains one family of a frozen result. prov, when not nil,
// is the provenance the pod carries: its pinned ranges are checked.
func familyPools(fam policy.Family, frozen policy.Frozen, subject policy.Subject, ix *policy.Index, rules policy.Rules, prov *policy.Provenance) FamilyPools {
	out := FamilyPools{Family: fam.String(), Source: frozen.Provenance.For(fam), List: frozen.Value(fam)}
	if out.List == nil {
		out.Pools = defaultVerdicts(fam, subject, ix, rules)
		if !anyAllowed(out.Pools) {
			out.Note = fmt.Sprintf("no usable Automatic %s pool serves namespace %q: the pod gets no %s address", fam, subject.Namespace.Name, fam)
		}
		return out
	}
	refs, err := policy.ParsePoolList(*out.List)
	if err != nil {
		out.Note = err.Error()
		return out
	}
	for _, ref := range refs {
		out.Pools = append(out.Pools, namedVerdict(fam, ref, subject, ix, rules, prov))
	}
	if !anyAllowed(out.Pools) {
		out.Note = fmt.Sprintf("no pool of %s can serve the pod", fam.AnnotationKey())
	}
	return out
}

// namedVerdict checks one entry of a list with the policy's own CheckList,
// as the webhook checks the whole list and the plugin each entry, and
// then the range the pod pinned it to.
func namedVerdict(fam policy.Family, ref string, subject policy.Subject, ix *policy.Index, rules policy.Rules, prov *policy.Provenance) PoolVerdict {
	v := PoolVerdict{Ref: ref}
	p, ok := ix.Lookup(ref)
	if ok {
		v.Pool = p.Name
		if p.CIDR.IsValid() {
			v.CIDR = p.CIDR.String()
		}
	}
	if vs := policy.CheckList(fam, policy.FormatPoolList([]string{ref}), subject, ix); len(vs) > 0 {
		why := make([]string, len(vs))
		for i, viol := range vs {
			why[i] = viol.Err.Error()
		}
		v.Why = strings.Join(why, "; ")
		return v
	}
	if prov != nil {
		if err := prov.CheckRange(ref, p); err != nil {
			v.Why = err.Error()
			return v
		}
	}
	v.Allowed = true
	if p.NodeSelector != nil && subject.NodeLabels == nil {
		if rules.PinDefaults {
			v.Why = fmt.Sprintf("Calico ignores its nodeSelector %q for a pool a pod names", p.NodeSelector)
		} else {
			v.Why = fmt.Sprintf("only on nodes its nodeSelector %q selects", p.NodeSelector)
		}
	}
	return v
}

// defaultVerdicts lists the Automatic pools of a family: those
// policy.DefaultPools gives a pod of the namespace naming none, and why
// each other one is not among them. Manual pools are never defaults and
// are left out.
func defaultVerdicts(fam policy.Family, subject policy.Subject, ix *policy.Index, rules policy.Rules) []PoolVerdict {
	chosen := make(map[string]bool)
	for _, p := range policy.DefaultPools(fam, subject.Namespace, ix, subject.NodeLabels) {
		chosen[p.Name] = true
	}
	nsLabels := labels.Set(subject.Namespace.SelectorLabels())
	var out []PoolVerdict
	for _, p := range ix.All() {
		if p.Manual || !p.CIDR.IsValid() || p.Family() != fam {
			continue
		}
		v := PoolVerdict{Ref: p.Name, Pool: p.Name, CIDR: p.CIDR.String()}
		switch {
		case chosen[p.Name]:
			v.Allowed = true
		case p.Invalid != nil:
			v.Why = "invalid: " + p.Invalid.Error()
		case p.NotForWorkloads:
			v.Why = "does not serve workloads (allowedUses)"
		case p.Disabled:
			v.Why = "disabled"
		case p.Terminating:
			v.Why = "being deleted"
		case !p.AllowsNamespace(nsLabels):
			v.Why = fmt.Sprintf("its namespaceSelector %q does not select namespace %q", p.NamespaceSelector, subject.Namespace.Name)
		case subject.NodeLabels != nil:
			v.Why = fmt.Sprintf("its nodeSelector %q does not select the pod's node", p.NodeSelector)
		case rules.PinDefaults:
			v.Why = fmt.Sprintf("its nodeSelector %q is ignored by Calico for a named pool, so it is pinned only for a pod bound to a node it selects at creation", p.NodeSelector)
		default:
			// Native mode: the plugin picks among the defaults on the
			// node, with the node's labels.
			v.Allowed = true
			v.Why = fmt.Sprintf("only on nodes its nodeSelector %q selects", p.NodeSelector)
		}
		out = append(out, v)
	}
	return out
}

func anyAllowed(vs []PoolVerdict) bool {
	for _, v := range vs {
		if v.Allowed {
			return true
		}
	}
	return false
}
