package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
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
		return nil, fmt.Errorf(`%w: not a JSON list: %v`, ErrMalformed, err)
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
			return nil, fmt.Errorf("%w: entry %d is %s, not a string", ErrMalformed, i, r)
		}
		if err := checkPoolRef(s); err != nil {
			return nil, fmt.Errorf("%w: entry %d %q %v", ErrMalformed, i, s, err)
		}
		if _, dup := seen[s]; dup {
			return nil, fmt.Errorf("%w: pool %q is listed twice", ErrMalformed, s)
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
	if len(value) > MaxAnnotationBytes {
		return p, fmt.Errorf("%w: provenance of %d bytes", ErrNotFrozen, len(value))
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(value)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w: provenance %q: %v", ErrNotFrozen, value, err)
	}
	if dec.More() {
		return p, fmt.Errorf("%w: provenance %q has trailing data", ErrNotFrozen, value)
	}
	for _, s := range []Source{p.IPv4, p.IPv6} {
		switch s {
		case SourcePod, SourceNamespace, SourceDefault:
		default:
			return p, fmt.Errorf("%w: provenance %q has unknown source %q", ErrNotFrozen, value, s)
		}
	}
	return p, nil
}
