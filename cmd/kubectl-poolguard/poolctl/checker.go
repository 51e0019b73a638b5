package poolctl

import (
	"fmt"

	"poolguard.dev/poolguard/policy"
)

// maxShapes bounds what a checker remembers, so that its memory stays
// bounded when every pod is different. Forgetting costs little: the API
// server lists pods namespace by namespace (in key order), so the shapes
// forgotten are mostly those of namespaces already done.
const maxShapes = 1 << 14

// checker checks pods against one pool index. Everything drift says
// about a pod but where its addresses lie depends only on its namespace
// and on the three annotations poolguard guards (the pool lists and the
// provenance): its shape. Pods of a namespace come in few shapes (those
// created under the same default, those naming the same pools), so the
// checker works a shape out once (reading the provenance, freezing the
// pod again, checking its pools) and then only places each pod's
// addresses. Within one checker a namespace name stands for one
// namespace.
type checker struct {
	ix      *policy.Index
	rules   policy.Rules
	locator *poolLocator
	shapes  map[shapeKey]*shape
}

func newChecker(ix *policy.Index, rules policy.Rules) *checker {
	return &checker{ix: ix, rules: rules, shapes: map[shapeKey]*shape{}}
}

// shapeKey is what a pod's verdicts other than its addresses depend on.
type shapeKey struct {
	namespace                       string
	provenance, ipv4, ipv6          string
	hasProvenance, hasIPv4, hasIPv6 bool
}

func shapeKeyOf(namespace string, annotations map[string]string) shapeKey {
	k := shapeKey{namespace: namespace}
	k.provenance, k.hasProvenance = annotations[policy.AnnotationProvenance]
	k.ipv4, k.hasIPv4 = annotations[policy.AnnotationIPv4Pools]
	k.ipv6, k.hasIPv6 = annotations[policy.AnnotationIPv6Pools]
	return k
}

// guarded returns the annotations of a shape: all a verdict reads.
func (k shapeKey) guarded() map[string]string {
	out := make(map[string]string, 3)
	if k.hasProvenance {
		out[policy.AnnotationProvenance] = k.provenance
	}
	if k.hasIPv4 {
		out[policy.AnnotationIPv4Pools] = k.ipv4
	}
	if k.hasIPv6 {
		out[policy.AnnotationIPv6Pools] = k.ipv6
	}
	return out
}

// shape is what the checker worked out for one shape of pod.
type shape struct {
	// findings are its findings but the addresses', without the pod's
	// namespace and name.
	findings []Finding
	// expect is what its addresses are checked against.
	expect *expectations
}

// check appends what drift reports about pod, in namespace ns, to out.
func (c *checker) check(out []Finding, pod Pod, ns policy.Namespace) []Finding {
	var s *shape
	key := shapeKeyOf(ns.Name, pod.Annotations)
	if pod.NodeLabels != nil {
		// A node's labels decide nodeSelectors: not part of a shape.
		s = c.work(key, ns, pod.NodeLabels)
	} else if s = c.shapes[key]; s == nil {
		if len(c.shapes) >= maxShapes {
			clear(c.shapes)
		}
		s = c.work(key, ns, nil)
		c.shapes[key] = s
	}
	for _, f := range s.findings {
		f.Namespace, f.Pod = pod.Namespace, pod.Name
		out = append(out, f)
	}
	if len(pod.IPs) == 0 {
		return out
	}
	if c.locator == nil {
		c.locator = newPoolLocator(c.ix)
	}
	for _, a := range placeAddresses(pod.IPs, s.expect, c.locator) {
		if !a.Expected {
			out = append(out, Finding{Namespace: pod.Namespace, Pod: pod.Name, Kind: KindAddress, Family: familyOf(a.IP), Detail: a.Why})
		}
	}
	return out
}

// work works out a shape: whether the pod is frozen, whether a pod
// created now would get the same, whether its pools can still serve it,
// and what its addresses may be.
func (c *checker) work(key shapeKey, ns policy.Namespace, nodeLabels map[string]string) *shape {
	out := &shape{}
	add := func(kind Kind, fam, format string, args ...any) {
		out.findings = append(out.findings, Finding{Kind: kind, Family: fam, Detail: fmt.Sprintf(format, args...)})
	}
	annotations := key.guarded()
	frozen, err := c.rules.ReadFrozen(ns.Name, annotations)
	var fp *policy.Frozen
	if err != nil {
		add(KindUnfrozen, "", "%v (%s)", err, unfrozenWhy(ns, c.rules))
	} else {
		fp = &frozen
		now := c.rules.Freeze(recreated(annotations, fp), ns, c.ix, nil)
		subject := policy.Subject{Namespace: ns, NodeLabels: nodeLabels}
		for _, fam := range policy.Families {
			if d := differs(fam, frozen, now); d != "" {
				add(KindDrift, fam.String(), "%s", d)
			}
			if frozen.Value(fam) == nil {
				continue
			}
			for _, v := range familyPools(fam, frozen, subject, c.ix, c.rules, &frozen.Provenance).Pools {
				if !v.Allowed {
					add(KindStale, fam.String(), "pool %q can no longer serve the pod: %s", v.Ref, v.Why)
				}
			}
		}
	}
	out.expect = newExpectations(fp, ns, c.ix)
	return out
}
