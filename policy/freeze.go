package policy

import "fmt"

// Namespace is what the policy needs of a pod's namespace.
type Namespace struct {
	Name            string
	Labels          map[string]string
	Annotations     map[string]string
	ResourceVersion string
}

// SelectorLabels returns the labels an IPPool's namespaceSelector is matched
// against: the namespace's labels, with kubernetes.io/metadata.name forced
// to its name exactly as the API server enforces, so the match is right even
// when the admission request predates the API server's own defaulting.
func (ns Namespace) SelectorLabels() map[string]string {
	out := make(map[string]string, len(ns.Labels)+1)
	for k, v := range ns.Labels {
		out[k] = v
	}
	if ns.Name != "" {
		out[LabelNamespaceName] = ns.Name
	}
	return out
}

// Frozen is the outcome of Freeze: the values the pod's pool annotations
// must have (absent when a family falls back to the default pools) and the
// provenance to stamp.
type Frozen struct {
	IPv4, IPv6 *string
	Provenance Provenance
}

// Value returns the frozen value of a family's annotation.
func (f Frozen) Value(fam Family) *string {
	if fam == IPv6 {
		return f.IPv6
	}
	return f.IPv4
}

// Rules are the freeze rules of a mode. The zero value is native mode's,
// where poolguard's own plugin reads the pod: a family on the default
// pools carries no list, and the plugin chooses among the Automatic pools
// that serve the namespace and the node when the pod starts.
type Rules struct {
	// PinDefaults (Calico mode) writes a family on the default pools as
	// the explicit list of the default pools at admission. Calico's CNI
	// reads the namespace's annotation again at every ADD for a pod that
	// names no pool, so only an explicit list keeps such a pod from moving
	// when its namespace later gains a default. Calico ignores the
	// nodeSelector of a named pool, so only pools that serve the pod's
	// node are pinned: for a pod bound at creation, those whose
	// nodeSelector selects its node; otherwise those with none. A family
	// with no such pool stays unpinned, and admission warns about it.
	PinDefaults bool
}

// Freeze computes, independently per family, the pool list a pod keeps for
// life under native rules (see Rules.Freeze).
func Freeze(podAnnotations map[string]string, ns Namespace, pools *Index) Frozen {
	return Rules{}.Freeze(podAnnotations, ns, pools, nil)
}

// Freeze computes, independently per family, the pool list a pod keeps for
// life: its own annotation, else its namespace's, else none (the default
// pools; with PinDefaults, their names), and pins every pool the lists name
// to its current range (see Provenance.Ranges; pools may be nil, which pins
// nothing). nodeLabels are the labels of the node a pod is bound to at
// creation, nil otherwise. It trusts nothing of an existing provenance
// annotation except the claims it can check: a list equal to the
// namespace's current value is reported as copied from the namespace, and
// a list equal to the pinned defaults as the defaults. That keeps Freeze
// idempotent when the API server reinvokes the webhook, while a client that
// forges the provenance gains nothing: its lists are reported as its own,
// and its ranges are recomputed.
func (r Rules) Freeze(podAnnotations map[string]string, ns Namespace, pools *Index, nodeLabels map[string]string) Frozen {
	var claimed Provenance
	if v, ok := podAnnotations[AnnotationProvenance]; ok {
		claimed, _ = ParseProvenance(v)
	}
	return r.freeze(podAnnotations, claimed, ns, pools, nodeLabels)
}

// freeze is Freeze with the pod's claimed provenance already parsed (the
// zero Provenance when it has none or it does not parse).
func (r Rules) freeze(podAnnotations map[string]string, claimed Provenance, ns Namespace, pools *Index, nodeLabels map[string]string) Frozen {
	var out Frozen
	fromNamespace := false
	for _, fam := range Families {
		key := fam.AnnotationKey()
		podVal, onPod := podAnnotations[key]
		nsVal, onNS := ns.Annotations[key]
		defaults, pinDefaults := r.pinnedDefaults(fam, ns, pools, nodeLabels)
		var val *string
		src := SourceDefault
		switch {
		case onPod && onNS && podVal == nsVal && claimed.For(fam) == SourceNamespace && claimed.Namespace == ns.Name:
			val, src = &podVal, SourceNamespace
		case onPod && !onNS && pinDefaults && podVal == defaults && claimed.For(fam) == SourceDefault:
			val = &podVal
		case onPod:
			val, src = &podVal, SourcePod
		case onNS:
			val, src = &nsVal, SourceNamespace
		case pinDefaults:
			val = &defaults
		}
		if src == SourceNamespace {
			fromNamespace = true
		}
		if fam == IPv6 {
			out.IPv6 = val
		} else {
			out.IPv4 = val
		}
		out.Provenance.set(fam, src)
	}
	if fromNamespace {
		out.Provenance.Namespace = ns.Name
		out.Provenance.NamespaceResourceVersion = ns.ResourceVersion
	}
	out.Provenance.Ranges = out.pin(pools)
	return out
}

// pinnedDefaults returns the list a family on the default pools is frozen
// to under these rules, and false when it is left without one.
func (r Rules) pinnedDefaults(fam Family, ns Namespace, pools *Index, nodeLabels map[string]string) (string, bool) {
	if !r.PinDefaults {
		return "", false
	}
	names := PinnableDefaults(fam, ns, pools, nodeLabels)
	if len(names) == 0 {
		return "", false
	}
	return FormatPoolList(names), true
}

// PinnableDefaults returns the names of the default pools of a family that
// can be pinned for a pod of the namespace: DefaultPools, the same rule the
// allocator's ChoosePools follows, at most MaxPoolsPerList, in index order.
func PinnableDefaults(fam Family, ns Namespace, pools *Index, nodeLabels map[string]string) []string {
	var names []string
	for _, p := range DefaultPools(fam, ns, pools, nodeLabels) {
		if len(names) == MaxPoolsPerList {
			break
		}
		names = append(names, p.Name)
	}
	return names
}

// pin maps every entry of the frozen lists that names a known pool to that
// pool's CIDR. Entries that do not parse or name no pool are left out: the
// validator refuses them, or, in warn mode, they stay unpinned.
func (f Frozen) pin(pools *Index) map[string]string {
	var ranges map[string]string
	for _, fam := range Families {
		v := f.Value(fam)
		if v == nil {
			continue
		}
		refs, err := ParsePoolList(*v)
		if err != nil {
			continue
		}
		for _, ref := range refs {
			if p, ok := pools.Lookup(ref); ok {
				if ranges == nil {
					ranges = make(map[string]string, len(refs))
				}
				ranges[ref] = p.CIDR.String()
			}
		}
	}
	return ranges
}

// Apply writes a Frozen result into an annotation map (allocating it when
// nil) and returns the map.
func (f Frozen) Apply(annotations map[string]string) map[string]string {
	if annotations == nil {
		annotations = make(map[string]string, 3)
	}
	for _, fam := range Families {
		if v := f.Value(fam); v != nil {
			annotations[fam.AnnotationKey()] = *v
		} else {
			delete(annotations, fam.AnnotationKey())
		}
	}
	annotations[AnnotationProvenance] = f.Provenance.String()
	return annotations
}

// IsFrozen reports, under native rules, whether the annotations are exactly
// what Freeze would write (see Rules.IsFrozen).
func IsFrozen(podAnnotations map[string]string, ns Namespace, pools *Index) bool {
	return Rules{}.IsFrozen(podAnnotations, ns, pools, nil)
}

// IsFrozen reports whether the annotations are exactly what Freeze would
// write for this namespace, these pools and this node: the validating
// webhook's check that the mutating webhook ran and that nothing after it
// tampered with the result.
func (r Rules) IsFrozen(podAnnotations map[string]string, ns Namespace, pools *Index, nodeLabels map[string]string) bool {
	_, err := r.CheckFrozen(podAnnotations, ns, pools, nodeLabels)
	return err == nil
}

// CheckFrozen reads the pod's frozen state back (ReadFrozen) and checks
// that it is exactly what Freeze would write for this namespace, these
// pools and this node, parsing the provenance once: the validating
// webhook's one call per pod. Every error wraps ErrNotFrozen.
func (r Rules) CheckFrozen(podAnnotations map[string]string, ns Namespace, pools *Index, nodeLabels map[string]string) (Frozen, error) {
	got, err := r.ReadFrozen(ns.Name, podAnnotations)
	if err != nil {
		return Frozen{}, err
	}
	want := r.freeze(podAnnotations, got.Provenance, ns, pools, nodeLabels)
	// The resourceVersion is informational: the namespace may change between
	// the mutating and the validating call of one request.
	claimed := got.Provenance
	claimed.NamespaceResourceVersion = want.Provenance.NamespaceResourceVersion
	// A mismatch is still refused (the check cannot tell an older
	// default from a forged one), but when the namespace moved on since
	// the mutating call it is said so, for the client to create the pod
	// again.
	mismatch := func(what string) error {
		if rv := got.Provenance.NamespaceResourceVersion; rv != "" && ns.ResourceVersion != "" && rv != ns.ResourceVersion {
			return fmt.Errorf("%w: %w: %s is not what poolguard would write now: namespace %s changed (resourceVersion %s, now %s) while the pod was admitted; create the pod again", ErrNotFrozen, ErrNamespaceChanged, what, ns.Name, rv, ns.ResourceVersion)
		}
		return fmt.Errorf("%w: %s is not what poolguard would write", ErrNotFrozen, what)
	}
	if !claimed.Equal(want.Provenance) {
		return Frozen{}, mismatch("the provenance")
	}
	for _, fam := range Families {
		v, w := got.Value(fam), want.Value(fam)
		if (v != nil) != (w != nil) || (v != nil && *v != *w) {
			return Frozen{}, mismatch(fam.AnnotationKey())
		}
	}
	return got, nil
}

// GuardedKeys are the annotations no update may add, change or remove.
var GuardedKeys = []string{AnnotationIPv4Pools, AnnotationIPv6Pools, AnnotationProvenance}

// DefaultKeys are the annotations that set a namespace's default pools.
var DefaultKeys = []string{AnnotationIPv4Pools, AnnotationIPv6Pools}

// ChangedGuardedKeys returns the guarded annotations an update adds,
// changes or removes.
func ChangedGuardedKeys(oldAnn, newAnn map[string]string) []string {
	var changed []string
	for _, k := range GuardedKeys {
		o, oOK := oldAnn[k]
		n, nOK := newAnn[k]
		if oOK != nOK || o != n {
			changed = append(changed, k)
		}
	}
	return changed
}

// ReadFrozen reads back what a pod was frozen to under native rules, as the
// CNI plugin and the webhook trust it: the provenance parses, and it agrees with the lists the
// pod carries (a family sourced from the pod or the namespace has its list,
// a family on the default pools has none, a list copied from a namespace
// was copied from the pod's own). Anything else wraps ErrNotFrozen: such a
// pod gets the fail-safe, never the pools it names. ReadFrozen cannot tell
// who wrote the provenance; admission makes sure only poolguard does (the
// webhook recomputes it on every pod it sees, and an admission policy
// refuses it on pods in the namespaces the webhook does not see).
func ReadFrozen(namespace string, podAnnotations map[string]string) (Frozen, error) {
	return Rules{}.ReadFrozen(namespace, podAnnotations)
}

// ReadFrozen reads back what a pod was frozen to under these rules: with
// PinDefaults a family on the default pools may carry their pinned list.
func (r Rules) ReadFrozen(namespace string, podAnnotations map[string]string) (Frozen, error) {
	raw, ok := podAnnotations[AnnotationProvenance]
	if !ok {
		return Frozen{}, fmt.Errorf("%w: no %s annotation", ErrNotFrozen, AnnotationProvenance)
	}
	prov, err := ParseProvenance(raw)
	if err != nil {
		return Frozen{}, err
	}
	out := Frozen{Provenance: prov}
	for _, fam := range Families {
		v, named := podAnnotations[fam.AnnotationKey()]
		src := prov.For(fam)
		switch {
		case named && src == SourceDefault && !r.PinDefaults:
			return Frozen{}, fmt.Errorf("%w: %s is set but the provenance says the pod uses the default pools", ErrNotFrozen, fam.AnnotationKey())
		case !named && src != SourceDefault:
			return Frozen{}, fmt.Errorf("%w: the provenance says %s came from the %s, but the pod has no such annotation", ErrNotFrozen, fam.AnnotationKey(), src)
		case src == SourceNamespace && prov.Namespace != namespace:
			return Frozen{}, fmt.Errorf("%w: the provenance says %s was copied from namespace %q, not the pod's own %q", ErrNotFrozen, fam.AnnotationKey(), Excerpt(prov.Namespace), namespace)
		}
		if named {
			if fam == IPv6 {
				out.IPv6 = &v
			} else {
				out.IPv4 = &v
			}
		}
	}
	return out, nil
}
