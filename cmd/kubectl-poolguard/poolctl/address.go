package poolctl

import (
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"poolguard.dev/poolguard/policy"
)

// AddressVerdict says where one of a pod's addresses lies.
type AddressVerdict struct {
	IP string `json:"ip"`
	// Pool and CIDR are the pool the address lies in, if any.
	Pool string `json:"pool,omitempty"`
	CIDR string `json:"cidr,omitempty"`
	// Expected: the address lies in a range the pod may hold (its frozen
	// pools, as pinned; its default pools; for a pod without a valid
	// provenance, the fail-safe pools). Why says what it should be.
	Expected bool   `json:"expected"`
	Why      string `json:"why,omitempty"`
}

// span is a range a pod may hold an address in, and where it comes from.
type span struct {
	prefix netip.Prefix
	from   string
}

// expectedSpans returns the ranges a pod's address of family fam may lie
// in. frozen is nil for a pod without a valid provenance. A pool disabled
// since the address was handed out still counts: its addresses stay.
func expectedSpans(fam policy.Family, frozen *policy.Frozen, ns policy.Namespace, ix *policy.Index) ([]span, string) {
	var out []span
	if frozen != nil && frozen.Value(fam) != nil {
		refs, _ := policy.ParsePoolList(*frozen.Value(fam))
		for _, ref := range refs {
			// The pinned range is what the firewall trusted at admission.
			if pinned, ok := frozen.Provenance.Ranges[ref]; ok {
				if pfx, err := netip.ParsePrefix(pinned); err == nil {
					out = append(out, span{pfx, fmt.Sprintf("%s (pinned)", ref)})
					continue
				}
			}
			if p, ok := ix.Lookup(ref); ok && p.CIDR.IsValid() {
				out = append(out, span{p.CIDR, ref})
			}
		}
		return out, "its frozen " + fam.AnnotationKey()
	}
	nsLabels := labels.Set(ns.SelectorLabels())
	for _, p := range ix.All() {
		if p.Manual || !p.CIDR.IsValid() || p.Family() != fam {
			continue
		}
		if frozen == nil && p.NamespaceSelector != nil {
			continue
		}
		if frozen != nil && !p.AllowsNamespace(nsLabels) {
			continue
		}
		out = append(out, span{p.CIDR, p.Name})
	}
	if frozen == nil {
		return out, "the fail-safe " + fam.String() + " pools"
	}
	return out, "its default " + fam.String() + " pools"
}

// expectation is what a pod's addresses of one family are checked
// against: the ranges they may lie in, and how to name them.
type expectation struct {
	spans []span
	what  string
}

// expectations holds a pod's expectation per family, each worked out
// when first needed (a default family's is a pass over every pool).
type expectations struct {
	frozen *policy.Frozen
	ns     policy.Namespace
	ix     *policy.Index
	by     [2]*expectation
}

func newExpectations(frozen *policy.Frozen, ns policy.Namespace, ix *policy.Index) *expectations {
	return &expectations{frozen: frozen, ns: ns, ix: ix}
}

// of returns the expectation for family fam.
func (e *expectations) of(fam policy.Family) *expectation {
	i := 0
	if fam == policy.IPv6 {
		i = 1
	}
	if e.by[i] == nil {
		spans, what := expectedSpans(fam, e.frozen, e.ns, e.ix)
		e.by[i] = &expectation{spans: spans, what: what}
	}
	return e.by[i]
}

// addressVerdicts places each of the pod's addresses.
func addressVerdicts(pod Pod, frozen *policy.Frozen, ns policy.Namespace, ix *policy.Index) []AddressVerdict {
	return placeAddresses(pod.IPs, newExpectations(frozen, ns, ix), newPoolLocator(ix))
}

// placeAddresses says where each address lies and whether it is expected
// there.
func placeAddresses(ips []netip.Addr, exp *expectations, loc *poolLocator) []AddressVerdict {
	var out []AddressVerdict
	for _, ip := range ips {
		v := AddressVerdict{IP: ip.String()}
		if p, ok := loc.find(ip); ok {
			v.Pool, v.CIDR = p.Name, p.CIDR.String()
		}
		fam := policy.IPv4
		if !ip.Is4() {
			fam = policy.IPv6
		}
		e := exp.of(fam)
		for _, s := range e.spans {
			if s.prefix.Contains(ip) {
				v.Expected = true
				break
			}
		}
		if !v.Expected {
			where := "in no IPPool"
			if v.Pool != "" {
				where = fmt.Sprintf("in pool %q (%s)", v.Pool, v.CIDR)
			}
			v.Why = fmt.Sprintf("%s lies %s, outside %s: %s", ip, where, e.what, spanList(e.spans))
		}
		out = append(out, v)
	}
	return out
}

func spanList(spans []span) string {
	if len(spans) == 0 {
		return "none"
	}
	parts := make([]string, len(spans))
	for i, s := range spans {
		parts[i] = s.from + " " + s.prefix.String()
	}
	return strings.Join(parts, ", ")
}
