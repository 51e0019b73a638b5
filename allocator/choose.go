package allocator

import (
	"errors"
	"fmt"
	"strings"

	"poolguard.dev/poolguard/policy"
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

// PodFacts is what the allocator knows of a pod when choosing its pools.
type PodFacts struct {
	Pod PodRef
	// Annotations are the pod's annotations (the frozen pool lists and
	// the provenance).
	Annotations map[string]string
	// NamespaceLabels are the labels of the pod's namespace.
	NamespaceLabels map[string]string
	// Node is the node's name and NodeLabels its labels.
	Node       string
	NodeLabels map[string]string
}

// Want is the pools one family may be drawn from, in order of preference.
type Want struct {
	Family policy.Family
	Pools  []Pool
	// Source says why these pools: the pod's provenance for the family,
	// or "" for an unfrozen pod under FailSafeDefaults.
	Source policy.Source
}

// Choose decides, without I/O, which pools each family of the pod's
// addresses comes from. A family is asked for when the pod's frozen
// annotation names pools for it, or, when it names none, when some default
// pool of that family serves the pod's namespace. Named pools keep their
// order; unusable ones (unknown, wrong family, disabled, not for this
// namespace or node) are skipped, and only when none is left does Choose
// fail, naming every reason.
func Choose(pod PodFacts, pools []Pool, fs FailSafe) ([]Want, error) {
	policyPools := make([]policy.Pool, len(pools))
	byName := make(map[string]Pool, len(pools))
	for i, p := range pools {
		policyPools[i] = p.Pool
		byName[p.Name] = p
	}
	ix := policy.NewIndex(policyPools)
	nsLabels := policy.Namespace{Name: pod.Pod.Namespace, Labels: pod.NamespaceLabels}.SelectorLabels()
	nodeLabels := pod.NodeLabels

	frozen, err := policy.ReadFrozen(pod.Pod.Namespace, pod.Annotations)
	if err != nil {
		if fs == FailSafeRefuse {
			return nil, fmt.Errorf("%w: pod %s: %w (created while the webhook was unavailable or bypassed?) and the plugin's failSafe is %q; recreate the pod", ErrNotFrozen, pod.Pod, err, fs)
		}
		return chooseUnfrozen(pod, ix, byName, nodeLabels)
	}
	prov := frozen.Provenance

	var out []Want
	var why []string
	for _, fam := range policy.Families {
		if value := frozen.Value(fam); value != nil {
			w, err := chooseNamed(pod, fam, *value, prov, ix, byName)
			if err != nil {
				return nil, err
			}
			w.Source = prov.For(fam)
			out = append(out, w)
			continue
		}
		defaults := ix.Defaults(fam, nsLabels)
		if len(defaults) == 0 {
			continue
		}
		w := Want{Family: fam, Source: policy.SourceDefault}
		for _, p := range defaults {
			if p.AllowsNode(nodeLabels) {
				w.Pools = append(w.Pools, byName[p.Name])
			}
		}
		if len(w.Pools) == 0 {
			why = append(why, fmt.Sprintf("no %s default pool allows node %q (candidates: %s)", fam, pod.Node, names(defaults)))
			continue
		}
		out = append(out, w)
	}
	if len(why) > 0 {
		return nil, fmt.Errorf("%w: pod %s: %s", policy.ErrNodeNotAllowed, pod.Pod, strings.Join(why, "; "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: pod %s names no pool and no enabled Automatic pool serves namespace %q", ErrNoPool, pod.Pod, pod.Pod.Namespace)
	}
	return out, nil
}

// chooseNamed returns the usable pools of a frozen list, in order.
func chooseNamed(pod PodFacts, fam policy.Family, value string, prov policy.Provenance, ix *policy.Index, byName map[string]Pool) (Want, error) {
	refs, err := policy.ParsePoolList(value)
	if err != nil {
		return Want{}, fmt.Errorf("pod %s: %s: %w", pod.Pod, fam.AnnotationKey(), err)
	}
	subject := policy.Subject{
		Namespace:  policy.Namespace{Name: pod.Pod.Namespace, Labels: pod.NamespaceLabels},
		NodeLabels: nonNil(pod.NodeLabels),
	}
	w := Want{Family: fam}
	var errs []error
	for _, ref := range refs {
		if vs := policy.CheckList(fam, policy.FormatPoolList([]string{ref}), subject, ix); len(vs) > 0 {
			for _, v := range vs {
				errs = append(errs, v.Err)
			}
			continue
		}
		p, _ := ix.Lookup(ref)
		if err := prov.CheckRange(ref, p); err != nil {
			errs = append(errs, err)
			continue
		}
		w.Pools = append(w.Pools, byName[p.Name])
	}
	if len(w.Pools) == 0 {
		return Want{}, fmt.Errorf("pod %s on node %q: no usable pool in %s %s: %w", pod.Pod, pod.Node, fam.AnnotationKey(), value, errors.Join(errs...))
	}
	return w, nil
}

// chooseUnfrozen applies FailSafeDefaults: policy's fail-safe pools,
// whatever the pod's annotations name.
func chooseUnfrozen(pod PodFacts, ix *policy.Index, byName map[string]Pool, nodeLabels map[string]string) ([]Want, error) {
	var out []Want
	for _, fam := range policy.Families {
		w := Want{Family: fam}
		for _, p := range ix.FailSafe(fam, nodeLabels) {
			w.Pools = append(w.Pools, byName[p.Name])
		}
		if len(w.Pools) > 0 {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: pod %s has no valid %s annotation, so it may only use unrestricted Automatic pools (no namespaceSelector), and none serves node %q", ErrNoPool, pod.Pod, policy.AnnotationProvenance, pod.Node)
	}
	return out, nil
}

func names(ps []policy.Pool) string {
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
