package poolctl

import (
	"fmt"

	"poolguard.dev/poolguard/policy"
)

// Admission explains what poolguard's webhook does with a pod about to be
// created: the pools it freezes per family, where they come from, and
// whether it admits the pod.
type Admission struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod,omitempty"`
	// Skipped says why poolguard leaves the pod alone (hostNetwork, a
	// namespace the webhook never sees); the rest then describes what
	// happens instead.
	Skipped string `json:"skipped,omitempty"`
	// Admitted is false when the webhook (in enforce mode) refuses the
	// pod; Refusals say why.
	Admitted bool     `json:"admitted"`
	Refusals []string `json:"refusals,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Provenance is what the webhook would stamp.
	Provenance *policy.Provenance `json:"provenance,omitempty"`
	Families   []FamilyPools      `json:"families"`
}

// ExplainCreate simulates the admission of pod into namespace ns against
// the pools, with the webhook's own calls: the mode's Rules.Freeze, then
// policy.CheckPod on the result. Nothing is created.
func ExplainCreate(pod Pod, ns policy.Namespace, ix *policy.Index, rules policy.Rules) Admission {
	out := Admission{Namespace: ns.Name, Pod: pod.Name, Admitted: true}
	if pod.HostNetwork {
		out.Skipped = "hostNetwork pod: poolguard admits it untouched; it has no pod network and no pool"
		return out
	}
	if why := unwatched(ns); why != "" {
		out.Skipped = why + ": the pod is created as written, without a provenance, and " + failSafeWords(rules)
		out.Families = failSafeFamilies(ix, pod.NodeLabels)
		return out
	}
	var freezeNode map[string]string
	if rules.PinDefaults {
		// As the webhook: only Calico's rules read the node.
		freezeNode = pod.NodeLabels
	}
	frozen := rules.Freeze(pod.Annotations, ns, ix, freezeNode)
	subject := policy.Subject{Namespace: ns, NodeLabels: pod.NodeLabels}
	deny, warn := policy.Split(policy.CheckPod(frozen, subject, ix))
	for _, v := range deny {
		out.Refusals = append(out.Refusals, v.Error())
	}
	for _, v := range warn {
		out.Warnings = append(out.Warnings, v.Error())
	}
	out.Admitted = len(deny) == 0
	prov := frozen.Provenance
	out.Provenance = &prov
	for _, fam := range policy.Families {
		out.Families = append(out.Families, familyPools(fam, frozen, subject, ix, rules, nil))
	}
	return out
}

// NamespaceReport explains a namespace's default pools.
type NamespaceReport struct {
	Namespace string `json:"namespace"`
	// Defaults are the namespace's pool annotations, by key.
	Defaults map[string]string `json:"defaults,omitempty"`
	// Valid is false when the webhook would refuse the annotations now
	// (Problems say why); Warnings are what it would warn about.
	Valid    bool     `json:"valid"`
	Problems []string `json:"problems,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// NewPod is what a pod naming no pool gets in the namespace.
	NewPod Admission `json:"newPod"`
}

// ExplainNamespace checks the namespace's annotations as the webhook
// checks a namespace update (policy.CheckNamespace) and explains the
// admission of a pod that names no pool.
func ExplainNamespace(ns policy.Namespace, ix *policy.Index, rules policy.Rules) NamespaceReport {
	out := NamespaceReport{Namespace: ns.Name, Valid: true}
	for _, key := range policy.DefaultKeys {
		if v, ok := ns.Annotations[key]; ok {
			if out.Defaults == nil {
				out.Defaults = map[string]string{}
			}
			out.Defaults[key] = v
		}
	}
	deny, warn := policy.Split(policy.CheckNamespace(ns, ix))
	for _, v := range deny {
		out.Problems = append(out.Problems, v.Error())
	}
	for _, v := range warn {
		out.Warnings = append(out.Warnings, v.Error())
	}
	out.Valid = len(deny) == 0
	out.NewPod = ExplainCreate(Pod{Namespace: ns.Name}, ns, ix, rules)
	return out
}

// PodReport explains a running pod's pools.
type PodReport struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Node      string `json:"node,omitempty"`
	// Skipped says why poolguard leaves the pod alone (hostNetwork).
	Skipped string `json:"skipped,omitempty"`
	// Provenance is the pod's, when it parses; ProvenanceValid says
	// whether the plugin trusts it (policy.ReadFrozen), and
	// ProvenanceProblem why not.
	Provenance        *policy.Provenance `json:"provenance,omitempty"`
	ProvenanceValid   bool               `json:"provenanceValid"`
	ProvenanceProblem string             `json:"provenanceProblem,omitempty"`
	// Unfrozen, for a pod without a valid provenance, says how it came to
	// be and what it gets.
	Unfrozen string `json:"unfrozen,omitempty"`
	// Frozen is what the pod keeps for life, each pool checked against
	// the pools as they are now (what a new sandbox of the pod would
	// get); for a pod without a valid provenance, the fail-safe pools
	// (native mode).
	Frozen []FamilyPools `json:"frozen"`
	// Now is what the pod would get if it were created again now with
	// the lists it named itself.
	Now Admission `json:"now"`
	// Addresses are the pod's addresses and the pool each lies in.
	Addresses []AddressVerdict `json:"addresses,omitempty"`
	// Findings are what drift reports about the pod.
	Findings []Finding `json:"findings,omitempty"`
}

// ExplainRunning explains a pod that exists: what it was frozen to, what
// it would get now, and where its addresses lie.
func ExplainRunning(pod Pod, ns policy.Namespace, ix *policy.Index, rules policy.Rules) PodReport {
	out := PodReport{Namespace: ns.Name, Pod: pod.Name, Node: pod.Node}
	if pod.HostNetwork {
		out.Skipped = "hostNetwork pod: poolguard leaves it alone; it has no pod network and no pool"
		return out
	}
	if p, err := policy.ParseProvenance(pod.Annotations[policy.AnnotationProvenance]); err == nil {
		out.Provenance = &p
	}
	subject := policy.Subject{Namespace: ns, NodeLabels: pod.NodeLabels}
	frozen, err := rules.ReadFrozen(ns.Name, pod.Annotations)
	var fp *policy.Frozen
	if err != nil {
		out.ProvenanceProblem = err.Error()
		out.Unfrozen = unfrozenWhy(ns, rules)
		if !rules.PinDefaults {
			// Calico mode has no fail-safe: Calico reads the annotations.
			out.Frozen = failSafeFamilies(ix, pod.NodeLabels)
		}
	} else {
		fp = &frozen
		out.ProvenanceValid = true
		for _, fam := range policy.Families {
			out.Frozen = append(out.Frozen, familyPools(fam, frozen, subject, ix, rules, &frozen.Provenance))
		}
	}
	again := pod
	again.Annotations = recreated(pod.Annotations, fp)
	out.Now = ExplainCreate(again, ns, ix, rules)
	out.Addresses = addressVerdicts(pod, fp, ns, ix)
	out.Findings = Check(pod, ns, ix, rules)
	return out
}

// failSafeWords says what happens to a pod without a provenance.
func failSafeWords(rules policy.Rules) string {
	if rules.PinDefaults {
		return "Calico allocates from whatever pools it names (the chart's admission policy limits them to calico.allowedPoolAnnotations)"
	}
	return "poolguard's plugin ignores the pools it names and gives it the fail-safe pools (Automatic, open to every namespace)"
}

// failSafeFamilies lists, per family, the pools a pod without a valid
// provenance may draw from (policy.Index.FailSafe): unrestricted
// Automatic pools. nodeLabels nil: node unknown, nodeSelectors are noted.
func failSafeFamilies(ix *policy.Index, nodeLabels map[string]string) []FamilyPools {
	var out []FamilyPools
	for _, fam := range policy.Families {
		fp := FamilyPools{Family: fam.String()}
		for _, p := range ix.All() {
			if p.Manual || !p.CIDR.IsValid() || p.Family() != fam {
				continue
			}
			v := PoolVerdict{Ref: p.Name, Pool: p.Name, CIDR: p.CIDR.String()}
			switch {
			case !p.Usable():
				v.Why = "not usable (disabled, being deleted or invalid)"
			case p.NamespaceSelector != nil:
				v.Why = fmt.Sprintf("has a namespaceSelector (%q): never for a pod without a valid provenance", p.NamespaceSelector)
			case p.NodeSelector != nil && nodeLabels == nil:
				v.Allowed = true
				v.Why = fmt.Sprintf("only on nodes its nodeSelector %q selects", p.NodeSelector)
			case !p.AllowsNode(nodeLabels):
				v.Why = fmt.Sprintf("its nodeSelector %q does not select the pod's node", p.NodeSelector)
			default:
				v.Allowed = true
			}
			fp.Pools = append(fp.Pools, v)
		}
		if !anyAllowed(fp.Pools) {
			fp.Note = fmt.Sprintf("no unrestricted Automatic %s pool: the pod gets no %s address from poolguard", fam, fam)
		}
		out = append(out, fp)
	}
	return out
}
