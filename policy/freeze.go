package policy

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
// pools). It trusts nothing of an existing provenance annotation except the
// one claim it can check: a list equal to the namespace's current value is
// reported as copied from the namespace. That keeps Freeze idempotent when
// the API server reinvokes the webhook, while a client that forges the
// provenance gains nothing: its lists are reported as its own.
func Freeze(podAnnotations map[string]string, ns Namespace) Frozen {
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
	return out
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
// write for this namespace: the validating webhook's check that the
// mutating webhook ran and that nothing after it tampered with the result.
func IsFrozen(podAnnotations map[string]string, ns Namespace) bool {
	got, ok := podAnnotations[AnnotationProvenance]
	if !ok {
		return false
	}
	claimed, err := ParseProvenance(got)
	if err != nil {
		return false
	}
	want := Freeze(podAnnotations, ns)
	// The resourceVersion is informational: the namespace may change between
	// the mutating and the validating call of one request.
	claimed.NamespaceResourceVersion = want.Provenance.NamespaceResourceVersion
	if claimed != want.Provenance {
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
