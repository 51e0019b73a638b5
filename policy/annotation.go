package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ParsePoolList parses a pool annotation's value: a JSON list of unique,
// non-empty pool names (DNS subdomains) or CIDRs, at most MaxPoolsPerList
// entries and MaxAnnotationBytes bytes. Every error wraps ErrMalformed and
// says what is wrong in words a person can act on.
func ParsePoolList(value string) ([]string, error) {
	if len(value) > MaxAnnotationBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrMalformed, len(value), MaxAnnotationBytes)
	}
	trimmed := bytes.TrimSpace([]byte(value))
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, fmt.Errorf(`%w: must be a JSON list of pool names, e.g. ["pool-a"]`, ErrMalformed)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, fmt.Errorf(`%w: not a JSON list: %v`, ErrMalformed, Excerpt(err.Error()))
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: the list is empty; remove the annotation to use the default pools", ErrMalformed)
	}
	if len(raw) > MaxPoolsPerList {
		return nil, fmt.Errorf("%w: %d pools, more than the %d allowed", ErrMalformed, len(raw), MaxPoolsPerList)
	}
	out := make([]string, 0, len(raw))
	seen := make(map[string]struct{}, len(raw))
	for i, r := range raw {
		var s string
		if len(r) == 0 || r[0] != '"' || json.Unmarshal(r, &s) != nil {
			return nil, fmt.Errorf("%w: entry %d is %s, not a string", ErrMalformed, i, Excerpt(string(r)))
		}
		if err := checkPoolRef(s); err != nil {
			return nil, fmt.Errorf("%w: entry %d %q %v", ErrMalformed, i, Excerpt(s), err)
		}
		if _, dup := seen[s]; dup {
			return nil, fmt.Errorf("%w: pool %q is listed twice", ErrMalformed, Excerpt(s))
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	return out, nil
}

// checkPoolRef accepts an object name or a CIDR.
func checkPoolRef(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(s); len(msgs) > 0 {
		return fmt.Errorf("is neither a pool name nor a CIDR: %s", msgs[0])
	}
	return nil
}

// FormatPoolList renders a list the way the webhook writes it, so that a
// value written by poolguard and parsed back is identical.
func FormatPoolList(pools []string) string {
	b, _ := json.Marshal(pools)
	return string(b)
}

// Provenance says where each of a pod's frozen pool lists came from. It is
// stored as JSON in AnnotationProvenance.
type Provenance struct {
	// IPv4 is the source of the ipv4pools list.
	IPv4 Source `json:"ipv4pools"`
	// IPv6 is the source of the ipv6pools list.
	IPv6 Source `json:"ipv6pools"`
	// Namespace is the namespace a SourceNamespace list was copied from.
	Namespace string `json:"namespace,omitempty"`
	// NamespaceResourceVersion is the namespace's resourceVersion when a
	// SourceNamespace list was copied.
	NamespaceResourceVersion string `json:"namespaceResourceVersion,omitempty"`
	// Ranges pins every pool the frozen lists name, as written in the list
	// (a name or a CIDR), to the pool's CIDR at admission. A firewall
	// trusts ranges, not names: a pool deleted and re-created under the
	// same name with another range must not carry the pod along, so the
	// plugin refuses a pool whose CIDR is no longer the pinned one. Pods
	// frozen before poolguard pinned ranges have none and are matched by
	// name alone.
	Ranges map[string]string `json:"ranges,omitempty"`
}

// Equal reports whether two provenances say the same thing.
func (p Provenance) Equal(o Provenance) bool {
	return p.IPv4 == o.IPv4 && p.IPv6 == o.IPv6 && p.Namespace == o.Namespace &&
		p.NamespaceResourceVersion == o.NamespaceResourceVersion && maps.Equal(p.Ranges, o.Ranges)
}

// CheckRange says whether pool p may still serve the pod under ref, the
// list entry that named it: yes unless the pod pinned ref to another range.
func (p Provenance) CheckRange(ref string, pool Pool) error {
	pinned, ok := p.Ranges[ref]
	if !ok || pinned == pool.CIDR.String() {
		return nil
	}
	return fail(ErrPoolChanged, "pool %q is now %s, but it was %s when the pod was admitted (it was deleted and re-created, or its range changed); the firewall trusted %s, so this pod keeps none of the new range: delete the pod and create it again", ref, pool.CIDR, pinned, pinned)
}

// Source is where a frozen pool list came from.
type Source string

// For returns the source of a family's list.
func (p Provenance) For(f Family) Source {
	if f == IPv6 {
		return p.IPv6
	}
	return p.IPv4
}

func (p *Provenance) set(f Family, s Source) {
	if f == IPv6 {
		p.IPv6 = s
	} else {
		p.IPv4 = s
	}
}

// String renders the provenance as its annotation value.
func (p Provenance) String() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// ParseProvenance parses AnnotationProvenance's value strictly.
func ParseProvenance(value string) (Provenance, error) {
	var p Provenance
	if len(value) > MaxProvenanceBytes {
		return p, fmt.Errorf("%w: provenance of %d bytes", ErrNotFrozen, len(value))
	}
	quoted := Excerpt(value)
	dec := json.NewDecoder(bytes.NewReader([]byte(value)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Provenance{}, fmt.Errorf("%w: provenance %q: %v", ErrNotFrozen, quoted, err)
	}
	if dec.More() {
		return Provenance{}, fmt.Errorf("%w: provenance %q has trailing data", ErrNotFrozen, quoted)
	}
	for _, s := range []Source{p.IPv4, p.IPv6} {
		switch s {
		case SourcePod, SourceNamespace, SourceDefault:
		default:
			return Provenance{}, fmt.Errorf("%w: provenance %q has unknown source %q", ErrNotFrozen, quoted, Excerpt(string(s)))
		}
	}
	if len(p.Ranges) > len(Families)*MaxPoolsPerList {
		return Provenance{}, fmt.Errorf("%w: provenance pins %d ranges, more than two full lists can name", ErrNotFrozen, len(p.Ranges))
	}
	for ref, cidr := range p.Ranges {
		if err := checkPoolRef(ref); err != nil {
			return Provenance{}, fmt.Errorf("%w: provenance pins %q, which %v", ErrNotFrozen, Excerpt(ref), err)
		}
		if pfx, err := ParsePoolCIDR(cidr); err != nil || pfx.String() != cidr {
			return Provenance{}, fmt.Errorf("%w: provenance pins %q to %q, not a canonical CIDR", ErrNotFrozen, Excerpt(ref), Excerpt(cidr))
		}
	}
	if len(p.Ranges) == 0 {
		p.Ranges = nil
	}
	return p, nil
}
