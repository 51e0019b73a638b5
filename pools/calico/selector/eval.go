package selector

import (
	"slices"
	"strings"
)

// node is one expression of a parsed selector. Nodes are never changed
// after parsing, so a Selector can be shared and matched concurrently.
type node interface {
	// match evaluates the expression against labels; a nil map has no
	// labels.
	match(labels map[string]string) bool
	// render appends the canonical text (render.go).
	render(b *strings.Builder)
}

// allNode is all(): every label map.
type allNode struct{}

// globalNode is global(). Calico's policy engine gives it a meaning of its
// own (non-namespaced resources only). Evaluated against a label map, as
// Calico IPAM evaluates pool selectors, it is true, and so it is here.
type globalNode struct{}

// hasNode is has(key).
type hasNode struct{ key string }

// op is a comparison of a label's value with a string.
type op uint8

const (
	opEq op = iota
	opNe
	opContains
	opStartsWith
	opEndsWith
)

// cmpNode is `key <op> value`.
type cmpNode struct {
	key   string
	op    op
	value string
}

// setNode is `key in {...}`, or `key not in {...}` when not is set. values
// is sorted and free of duplicates, for binary search and a canonical
// rendering.
type setNode struct {
	key    string
	values []string
	not    bool
}

// notNode is !x.
type notNode struct{ x node }

// andNode and orNode hold two or more operands. Nested ones of the same
// kind are merged when they are built, so (a && b) && c is one andNode.
type (
	andNode struct{ xs []node }
	orNode  struct{ xs []node }
)

func (allNode) match(map[string]string) bool    { return true }
func (globalNode) match(map[string]string) bool { return true }

func (n hasNode) match(labels map[string]string) bool {
	_, ok := labels[n.key]
	return ok
}

// match: of the comparisons only != is true for an absent label, as in
// Calico's selector reference.
func (n cmpNode) match(labels map[string]string) bool {
	v, ok := labels[n.key]
	if !ok {
		return n.op == opNe
	}
	switch n.op {
	case opEq:
		return v == n.value
	case opNe:
		return v != n.value
	case opContains:
		return strings.Contains(v, n.value)
	case opStartsWith:
		return strings.HasPrefix(v, n.value)
	case opEndsWith:
		return strings.HasSuffix(v, n.value)
	}
	return false
}

// match: `in` needs the label; `not in` is true when it is absent.
func (n setNode) match(labels map[string]string) bool {
	v, ok := labels[n.key]
	if !ok {
		return n.not
	}
	_, found := slices.BinarySearch(n.values, v)
	return found != n.not
}

func (n notNode) match(labels map[string]string) bool { return !n.x.match(labels) }

func (n andNode) match(labels map[string]string) bool {
	for _, x := range n.xs {
		if !x.match(labels) {
			return false
		}
	}
	return true
}

func (n orNode) match(labels map[string]string) bool {
	for _, x := range n.xs {
		if x.match(labels) {
			return true
		}
	}
	return false
}

// negate returns !x, removing a double negation so that the tree, and the
// canonical text, is the same however many "!" the input had.
func negate(x node) node {
	if n, ok := x.(notNode); ok {
		return n.x
	}
	return notNode{x}
}

// newAnd returns the conjunction of xs (at least one), merging nested
// conjunctions.
func newAnd(xs []node) node {
	if len(xs) == 1 {
		return xs[0]
	}
	flat := make([]node, 0, len(xs))
	for _, x := range xs {
		if a, ok := x.(andNode); ok {
			flat = append(flat, a.xs...)
		} else {
			flat = append(flat, x)
		}
	}
	return andNode{flat}
}

// newOr returns the disjunction of xs (at least one), merging nested
// disjunctions.
func newOr(xs []node) node {
	if len(xs) == 1 {
		return xs[0]
	}
	flat := make([]node, 0, len(xs))
	for _, x := range xs {
		if o, ok := x.(orNode); ok {
			flat = append(flat, o.xs...)
		} else {
			flat = append(flat, x)
		}
	}
	return orNode{flat}
}

// newSet sorts and de-duplicates values in place.
func newSet(key string, values []string, not bool) setNode {
	slices.Sort(values)
	return setNode{key: key, values: slices.Compact(values), not: not}
}
