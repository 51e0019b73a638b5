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

// Freeze computes, independently per family, the pool list a pod keeps for
// life: its own annotation, else its namespace's, else none (the default
// pools), and pins every pool the lists name to its current range (see
// Provenance.Ranges; pools may be nil, which pins nothing). It trusts
// nothing of an existing provenance annotation except the one claim it can
// check: a list equal to the namespace's current value is reported as
// copied from the namespace. That keeps Freeze idempotent when the API
// server reinvokes the webhook, while a client that forges the provenance
// gains nothing: its lists are reported as its own, and its ranges are
// recomputed.
func Freeze(podAnnotations map[string]string, ns Namespace, pools *Index) Frozen {
	var claimed Provenance
	if v, ok := podAnnotations[AnnotationProvenance]; ok {
		claimed, _ = ParseProvenance(v)
	}
	var out Frozen
	fromNamespace := false
	for _, fam := range Families {
		key := fam.AnnotationKey()
		podVal, onPod := podAnnotations[key]
		nsVal, onNS := ns.Annotations[key]
		var val *string
		src := SourceDefault
		switch {
		case onPod && onNS && podVal == nsVal && claimed.For(fam) == SourceNamespace && claimed.Namespace == ns.Name:
			val, src = &podVal, SourceNamespace
		case onPod:
			val, src = &podVal, SourcePod
		case onNS:
			val, src = &nsVal, SourceNamespace
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

// IsFrozen reports whether the annotations are exactly what Freeze would
// write for this namespace and these pools: the validating webhook's check
// that the mutating webhook ran and that nothing after it tampered with the
// result.
func IsFrozen(podAnnotations map[string]string, ns Namespace, pools *Index) bool {
	got, ok := podAnnotations[AnnotationProvenance]
	if !ok {
		return false
	}
	claimed, err := ParseProvenance(got)
	if err != nil {
		return false
	}
	want := Freeze(podAnnotations, ns, pools)
	// The resourceVersion is informational: the namespace may change between
	// the mutating and the validating call of one request.
	claimed.NamespaceResourceVersion = want.Provenance.NamespaceResourceVersion
	if !claimed.Equal(want.Provenance) {
		return false
	}
	for _, fam := range Families {
		v, ok := podAnnotations[fam.AnnotationKey()]
		w := want.Value(fam)
		if ok != (w != nil) || (ok && v != *w) {
			return false
		}
	}
	return true
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

// ReadFrozen reads back what a pod was frozen to, as the CNI plugin and the
// webhook trust it: the provenance parses, and it agrees with the lists the
// pod carries (a family sourced from the pod or the namespace has its list,
// a family on the default pools has none, a list copied from a namespace
// was copied from the pod's own). Anything else wraps ErrNotFrozen: such a
// pod gets the fail-safe, never the pools it names. ReadFrozen cannot tell
// who wrote the provenance; admission makes sure only poolguard does (the
// webhook recomputes it on every pod it sees, and an admission policy
// refuses it on pods in the namespaces the webhook does not see).
func ReadFrozen(namespace string, podAnnotations map[string]string) (Frozen, error) {
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
		case named && src == SourceDefault:
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
