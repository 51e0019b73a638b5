package poolctl

import (
	"cmp"
	"fmt"
	"slices"

	"poolguard.dev/poolguard/policy"
)

// Kind is what a drift finding is about.
type Kind string

const (
	// KindDrift: a family's frozen list is not what the pod would get if
	// it were created again now (its namespace's default moved, or the
	// pinned default pools changed).
	KindDrift Kind = "drift"
	// KindUnfrozen: the pod has no valid provenance (admitted while the
	// webhook was bypassed, in an opted-out namespace, or before poolguard
	// was installed).
	KindUnfrozen Kind = "unfrozen"
	// KindAddress: an address lies outside the ranges the pod may hold.
	KindAddress Kind = "address"
	// KindStale: a pool the pod is frozen to can no longer serve it (gone,
	// disabled, no longer allowed, or another range than it pinned): its
	// next sandbox would get no address from it.
	KindStale Kind = "stale"
)

// kindOrder sorts findings the way a person reads them: worst first.
var kindOrder = map[Kind]int{KindAddress: 0, KindUnfrozen: 1, KindDrift: 2, KindStale: 3}

// Finding is one thing drift reports about a pod.
type Finding struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Kind      Kind   `json:"kind"`
	Family    string `json:"family,omitempty"`
	Detail    string `json:"detail"`
}

// DriftReport is the outcome of Drift.
type DriftReport struct {
	Findings []Finding `json:"findings"`
	// Checked counts the pods checked; HostNetwork and Finished those
	// skipped (no pod network; no address any more).
	Checked     int `json:"checked"`
	HostNetwork int `json:"skippedHostNetwork"`
	Finished    int `json:"skippedFinished"`
}

// Drift checks every pod against its namespace (by name; a namespace
// missing from the map is taken as one without labels or annotations)
// and the pools.
func Drift(pods []Pod, namespaces map[string]policy.Namespace, ix *policy.Index, rules policy.Rules) DriftReport {
	d := newDrifter(namespaces, ix, rules)
	for _, pod := range pods {
		d.add(pod)
	}
	return d.report()
}

// drifter builds a DriftReport one pod at a time, so that drift -A can
// check each page of pods as it arrives instead of holding them all.
type drifter struct {
	namespaces map[string]policy.Namespace
	checker    *checker
	out        DriftReport
}

func newDrifter(namespaces map[string]policy.Namespace, ix *policy.Index, rules policy.Rules) *drifter {
	return &drifter{namespaces: namespaces, checker: newChecker(ix, rules), out: DriftReport{Findings: []Finding{}}}
}

// add checks one pod, or counts it as skipped.
func (d *drifter) add(pod Pod) {
	switch {
	case pod.HostNetwork:
		d.out.HostNetwork++
		return
	case pod.Finished:
		d.out.Finished++
		return
	}
	d.out.Checked++
	ns, ok := d.namespaces[pod.Namespace]
	if !ok {
		ns = policy.Namespace{Name: pod.Namespace}
	}
	d.out.Findings = d.checker.check(d.out.Findings, pod, ns)
}

// report returns the findings so far, sorted.
func (d *drifter) report() DriftReport {
	slices.SortStableFunc(d.out.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod),
			cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]), cmp.Compare(a.Family, b.Family))
	})
	return d.out
}

// Check returns what drift reports about one pod.
func Check(pod Pod, ns policy.Namespace, ix *policy.Index, rules policy.Rules) []Finding {
	if pod.HostNetwork {
		return nil
	}
	return newChecker(ix, rules).check(nil, pod, ns)
}

// unfrozenWhy says how a pod without a valid provenance came to be, what
// it gets, and what to do.
func unfrozenWhy(ns policy.Namespace, rules policy.Rules) string {
	gets := "poolguard's plugin gives it the fail-safe pools, whatever it names"
	if rules.PinDefaults {
		gets = "Calico allocates from whatever it names, or from its namespace's default at every sandbox creation"
	}
	if w := unwatched(ns); w != "" {
		return w + ": its pods are never frozen; " + gets
	}
	return "admitted while the webhook was bypassed or down, or before poolguard was installed: " + gets + "; delete the pod and create it again to freeze it"
}

// differs says how a family's frozen list differs from what a pod
// created again now would get, or "" when it does not.
func differs(fam policy.Family, frozen, now policy.Frozen) string {
	fs, ns := frozen.Provenance.For(fam), now.Provenance.For(fam)
	fv, nv := frozen.Value(fam), now.Value(fam)
	if fs == ns && (fv == nil) == (nv == nil) && (fv == nil || *fv == *nv) {
		return ""
	}
	return fmt.Sprintf("frozen to %s, but a pod created now would get %s", describe(fv, fs, &frozen.Provenance), describe(nv, ns, nil))
}

// describe renders a family's list and its source; prov, for a list
// frozen earlier, says which namespace version it was copied from.
func describe(v *string, src policy.Source, prov *policy.Provenance) string {
	list := "the default pools"
	if v != nil {
		list = *v
	}
	switch src {
	case policy.SourceNamespace:
		if prov == nil {
			return list + " (the namespace's default now)"
		}
		return fmt.Sprintf("%s (namespace %s's default at resourceVersion %s)", list, prov.Namespace, prov.NamespaceResourceVersion)
	case policy.SourcePod:
		return list + " (named by the pod)"
	}
	if v != nil {
		return list + " (the default pools, pinned)"
	}
	return list
}

func familyOf(ip string) string {
	for i := 0; i < len(ip); i++ {
		if ip[i] == ':' {
			return policy.IPv6.String()
		}
	}
	return policy.IPv4.String()
}
