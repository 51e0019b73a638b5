package policy

import (
	"errors"
	"fmt"
	"strings"
)

// FailSafe is what the allocator does for a pod that never passed
// poolguard's mutating webhook (no valid provenance annotation): a pod
// created while the webhook was down or bypassed, or a static pod.
type FailSafe string

const (
	// FailSafeDefaults ignores any pool annotation on the pod and allocates
	// from the unrestricted default pools only: Automatic, enabled, with no
	// namespaceSelector (and a nodeSelector matching the node). It keeps
	// the cluster running without ever handing out a Manual or restricted
	// pool's address. The default.
	FailSafeDefaults FailSafe = "defaults"
	// FailSafeRefuse refuses such pods outright.
	FailSafeRefuse FailSafe = "refuse"
)

// PodFacts is what the choice of a pod's pools depends on, as the node
// reads it when the pod's sandbox is created.
type PodFacts struct {
	Namespace, Name string
	// Annotations are the pod's annotations (the frozen pool lists and
	// the provenance).
	Annotations map[string]string
	// NamespaceLabels are the labels of the pod's namespace.
	NamespaceLabels map[string]string
	// Node is the node's name and NodeLabels its labels.
	Node       string
	NodeLabels map[string]string
}

func (p PodFacts) String() string { return p.Namespace + "/" + p.Name }

// Choice is the pools one family of a pod's addresses may be drawn from,
// in order of preference.
type Choice struct {
	Family Family
	Pools  []Pool
	// Source says why these pools: the pod's provenance for the family,
	// or "" for an unfrozen pod under FailSafeDefaults.
	Source Source
}

// ChoosePools decides which pools each family of a pod's addresses comes
// from: the one rule the allocator follows. A family is asked for when the
// pod's frozen annotation names pools for it, or, when it names none, when
// some default pool of that family (DefaultPools) serves the pod's
// namespace. Named pools keep their order; unusable ones (unknown, wrong
// family, disabled, not for this namespace or node, another range than the
// pod was admitted with) are skipped, and only when none is left does
// ChoosePools fail, naming every reason. A pod without a trustworthy
// provenance gets what fs says.
func ChoosePools(pod PodFacts, pools *Index, fs FailSafe) ([]Choice, error) {
	nodeLabels := nonNil(pod.NodeLabels)
	frozen, err := ReadFrozen(pod.Namespace, pod.Annotations)
	if err != nil {
		if fs == FailSafeRefuse {
			return nil, fmt.Errorf("pod %s: %w (created while the webhook was unavailable or bypassed?) and the plugin's failSafe is %q; recreate the pod", pod, err, fs)
		}
		return chooseUnfrozen(pod, pools, nodeLabels)
	}
	prov := frozen.Provenance
	ns := Namespace{Name: pod.Namespace, Labels: pod.NamespaceLabels}

	var out []Choice
	var why []string
	for _, fam := range Families {
		if value := frozen.Value(fam); value != nil {
			c, err := chooseNamed(pod, fam, *value, prov, pools)
			if err != nil {
				return nil, err
			}
			c.Source = prov.For(fam)
			out = append(out, c)
			continue
		}
		candidates := pools.Defaults(fam, ns.SelectorLabels())
		if len(candidates) == 0 {
			continue
		}
		c := Choice{Family: fam, Source: SourceDefault, Pools: DefaultPools(fam, ns, pools, nodeLabels)}
		if len(c.Pools) == 0 {
			why = append(why, fmt.Sprintf("no %s default pool allows node %q (candidates: %s)", fam, pod.Node, poolNames(candidates)))
			continue
		}
		out = append(out, c)
	}
	if len(why) > 0 {
		return nil, fmt.Errorf("%w: pod %s: %s", ErrNodeNotAllowed, pod, strings.Join(why, "; "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: pod %s names no pool and no enabled Automatic pool serves namespace %q", ErrNoPool, pod, pod.Namespace)
	}
	return out, nil
}

// DefaultPools returns the pools of a family that a pod of the namespace
// naming none gets: the namespace's defaults (Index.Defaults) that serve
// the pod's node. With nodeLabels nil the node is not known (a pod not yet
// bound when it is admitted): only the defaults without a nodeSelector,
// which serve any node, are sure to apply.
func DefaultPools(fam Family, ns Namespace, pools *Index, nodeLabels map[string]string) []Pool {
	var out []Pool
	for _, p := range pools.Defaults(fam, ns.SelectorLabels()) {
		if p.NodeSelector == nil || (nodeLabels != nil && p.AllowsNode(nodeLabels)) {
			out = append(out, p)
		}
	}
	return out
}

// chooseNamed returns the usable pools of a frozen list, in order.
func chooseNamed(pod PodFacts, fam Family, value string, prov Provenance, pools *Index) (Choice, error) {
	refs, err := ParsePoolList(value)
	if err != nil {
		return Choice{}, fmt.Errorf("pod %s: %s: %w", pod, fam.AnnotationKey(), err)
	}
	subject := Subject{
		Namespace:  Namespace{Name: pod.Namespace, Labels: pod.NamespaceLabels},
		NodeLabels: nonNil(pod.NodeLabels),
	}
	c := Choice{Family: fam}
	var errs []error
	for _, ref := range refs {
		if vs := CheckList(fam, FormatPoolList([]string{ref}), subject, pools); len(vs) > 0 {
			for _, v := range vs {
				errs = append(errs, v.Err)
			}
			continue
		}
		p, _ := pools.Lookup(ref)
		if err := prov.CheckRange(ref, p); err != nil {
			errs = append(errs, err)
			continue
		}
		c.Pools = append(c.Pools, p)
	}
	if len(c.Pools) == 0 {
		return Choice{}, fmt.Errorf("pod %s on node %q: no usable pool in %s %s: %w", pod, pod.Node, fam.AnnotationKey(), value, errors.Join(errs...))
	}
	return c, nil
}

// chooseUnfrozen applies FailSafeDefaults: the index's fail-safe pools,
// whatever the pod's annotations name.
func chooseUnfrozen(pod PodFacts, pools *Index, nodeLabels map[string]string) ([]Choice, error) {
	var out []Choice
	for _, fam := range Families {
		if ps := pools.FailSafe(fam, nodeLabels); len(ps) > 0 {
			out = append(out, Choice{Family: fam, Pools: ps})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: pod %s has no valid %s annotation, so it may only use unrestricted Automatic pools (no namespaceSelector), and none serves node %q", ErrNoPool, pod, AnnotationProvenance, pod.Node)
	}
	return out, nil
}

func poolNames(ps []Pool) string {
	n := make([]string, len(ps))
	for i, p := range ps {
		n[i] = p.Name
	}
	return strings.Join(n, ", ")
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
