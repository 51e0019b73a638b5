package policy

import (
	"fmt"
	"net/netip"
	"sort"

	"k8s.io/apimachinery/pkg/labels"
)

// Family is an IP address family.
type Family int

const (
	// IPv4 is the IPv4 family.
	IPv4 Family = 4
	// IPv6 is the IPv6 family.
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// AnnotationKey returns the pool annotation key for the family.
func (f Family) AnnotationKey() string {
	if f == IPv6 {
		return AnnotationIPv6Pools
	}
	return AnnotationIPv4Pools
}

// Families lists the families in the order poolguard handles them.
var Families = []Family{IPv4, IPv6}

// FamilyOf returns the family of a prefix.
func FamilyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

// Pool is the one pool model the policy works on. Adapters build it from
// poolguard's IPPool or from Calico's IPPool.
type Pool struct {
	// Name is the pool's object name.
	Name string
	// CIDR is the pool's range, canonical (masked).
	CIDR netip.Prefix
	// Disabled pools hand out no new addresses.
	Disabled bool
	// Terminating pools are being deleted: no new allocations either.
	Terminating bool
	// Manual pools are used only when named.
	Manual bool
	// NamespaceSelector selects the namespaces allowed to use the pool; nil
	// means every namespace.
	NamespaceSelector Selector
	// NodeSelector selects the nodes allowed to use the pool; nil means
	// every node.
	NodeSelector Selector
	// Invalid, when set, says why the pool cannot serve pods at all (a
	// Calico pool whose selector does not parse): it is never a default,
	// naming it is refused with this reason, and it never matches by
	// accident.
	Invalid error
	// NotForWorkloads is set when the pool may not serve pods at all (a
	// Calico pool whose allowedUses lacks Workload).
	NotForWorkloads bool
}

// Family returns the pool's address family.
func (p Pool) Family() Family { return FamilyOf(p.CIDR) }

// AllowsNamespace reports whether pods of a namespace with these labels may
// draw from the pool.
func (p Pool) AllowsNamespace(nsLabels labels.Set) bool {
	return p.NamespaceSelector == nil || p.NamespaceSelector.Matches(nsLabels)
}

// AllowsNode reports whether pods on a node with these labels may draw from
// the pool.
func (p Pool) AllowsNode(nodeLabels labels.Set) bool {
	return p.NodeSelector == nil || p.NodeSelector.Matches(nodeLabels)
}

// Usable reports whether the pool hands out new addresses.
func (p Pool) Usable() bool {
	return !p.Disabled && !p.Terminating && !p.NotForWorkloads && p.Invalid == nil
}

// Selector matches label sets: a Kubernetes label selector for poolguard's
// IPPools, Calico's selector language for Calico's. labels.Selector is
// one.
type Selector interface {
	Matches(labels.Labels) bool
	String() string
}

// Index looks pools up by name or by CIDR, as Calico's annotation allows
// either. It is an immutable snapshot: build a new one when pools change.
type Index struct {
	byName map[string]*Pool
	byCIDR map[netip.Prefix]*Pool
	all    []Pool
}

// NewIndex indexes pools. Later pools with a duplicate name are ignored.
func NewIndex(pools []Pool) *Index {
	ix := &Index{
		byName: make(map[string]*Pool, len(pools)),
		byCIDR: make(map[netip.Prefix]*Pool, len(pools)),
		all:    make([]Pool, 0, len(pools)),
	}
	seen := make(map[string]struct{}, len(pools))
	for _, p := range pools {
		if _, dup := seen[p.Name]; dup {
			continue
		}
		seen[p.Name] = struct{}{}
		ix.all = append(ix.all, p)
	}
	markOverlaps(ix.all)
	for i := range ix.all {
		p := &ix.all[i]
		ix.byName[p.Name] = p
		ix.byCIDR[p.CIDR] = p
	}
	return ix
}

// markOverlaps makes every pool whose range overlaps another's Invalid. The
// admission webhook refuses an overlapping IPPool, but a pool can still
// arrive without it (created while the webhook was bypassed, or by the
// chart's pre-install hook before the webhook exists), and two pools
// sharing addresses could hand one address to two pods: neither serves
// until a person fixes one. Prefixes are nested or disjoint, so after
// sorting by start address (the wider first) a pool overlaps an earlier
// one exactly when it lies inside the last pool that did not.
func markOverlaps(pools []Pool) {
	order := make([]int, 0, len(pools))
	for i := range pools {
		if pools[i].CIDR.IsValid() {
			order = append(order, i)
		}
	}
	sort.Slice(order, func(a, b int) bool {
		pa, pb := pools[order[a]].CIDR.Masked(), pools[order[b]].CIDR.Masked()
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c < 0
		}
		return pa.Bits() < pb.Bits()
	})
	mark := func(p, other *Pool) {
		if p.Invalid == nil {
			p.Invalid = fmt.Errorf("%w: %s overlaps IPPool %q (%s); neither hands out addresses until one of them changes", ErrOverlap, p.CIDR, other.Name, other.CIDR)
		}
	}
	var outer *Pool
	for _, i := range order {
		p := &pools[i]
		if outer != nil && outer.CIDR.Overlaps(p.CIDR) {
			mark(p, outer)
			mark(outer, p)
			continue
		}
		outer = p
	}
}

// Lookup finds a pool by name, or by CIDR written in any textual form.
func (ix *Index) Lookup(ref string) (Pool, bool) {
	if ix == nil {
		return Pool{}, false
	}
	if p, ok := ix.byName[ref]; ok {
		return *p, true
	}
	if pfx, err := netip.ParsePrefix(ref); err == nil {
		if p, ok := ix.byCIDR[pfx]; ok {
			return *p, true
		}
	}
	return Pool{}, false
}

// All returns every pool in the index. The caller must not modify it.
func (ix *Index) All() []Pool {
	if ix == nil {
		return nil
	}
	return ix.all
}

// FailSafe returns the pools of a family that a pod which never passed
// poolguard's admission (no valid provenance) may draw from on a node with
// these labels: Automatic, usable, open to every namespace (no
// namespaceSelector) and serving the node. Whatever such a pod's
// annotations name, it never gets a Manual or restricted pool's address.
func (ix *Index) FailSafe(f Family, nodeLabels labels.Set) []Pool {
	var out []Pool
	for _, p := range ix.All() {
		if p.Family() == f && !p.Manual && p.Usable() && p.NamespaceSelector == nil && p.AllowsNode(nodeLabels) {
			out = append(out, p)
		}
	}
	return out
}

// Defaults returns the Automatic, usable pools of a family that pods of the
// namespace may use: what a pod that names no pool gets.
func (ix *Index) Defaults(f Family, nsLabels labels.Set) []Pool {
	var out []Pool
	for _, p := range ix.All() {
		if p.Family() == f && !p.Manual && p.Usable() && p.AllowsNamespace(nsLabels) {
			out = append(out, p)
		}
	}
	return out
}
