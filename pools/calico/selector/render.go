package selector

import "strings"

// The canonical text: single spaces around operators, double quotes
// (single ones only for a value that contains a double quote, since there
// are no escapes), sets sorted and de-duplicated, double negations removed,
// and only the parentheses that precedence needs. It is not byte-for-byte
// what calicoctl prints (Calico parenthesises every && and ||), but Calico
// parses it to the same selector.

func (allNode) render(b *strings.Builder)    { b.WriteString("all()") }
func (globalNode) render(b *strings.Builder) { b.WriteString("global()") }

func (n hasNode) render(b *strings.Builder) {
	b.WriteString("has(")
	b.WriteString(n.key)
	b.WriteByte(')')
}

var opText = [...]string{
	opEq:         " == ",
	opNe:         " != ",
	opContains:   " contains ",
	opStartsWith: " starts with ",
	opEndsWith:   " ends with ",
}

func (n cmpNode) render(b *strings.Builder) {
	b.WriteString(n.key)
	b.WriteString(opText[n.op])
	writeQuoted(b, n.value)
}

func (n setNode) render(b *strings.Builder) {
	b.WriteString(n.key)
	if n.not {
		b.WriteString(" not in {")
	} else {
		b.WriteString(" in {")
	}
	for i, v := range n.values {
		if i > 0 {
			b.WriteString(", ")
		}
		writeQuoted(b, v)
	}
	b.WriteByte('}')
}

// render of !x needs parentheses only around && and ||, which bind less
// tightly than "!".
func (n notNode) render(b *strings.Builder) {
	b.WriteByte('!')
	switch n.x.(type) {
	case andNode, orNode:
		writeParens(b, n.x)
	default:
		n.x.render(b)
	}
}

// render of a && b needs parentheses only around an || operand.
func (n andNode) render(b *strings.Builder) {
	for i, x := range n.xs {
		if i > 0 {
			b.WriteString(" && ")
		}
		if _, ok := x.(orNode); ok {
			writeParens(b, x)
		} else {
			x.render(b)
		}
	}
}

// render of a || b never needs parentheses: operands bind at least as
// tightly, and nested || were merged.
func (n orNode) render(b *strings.Builder) {
	for i, x := range n.xs {
		if i > 0 {
			b.WriteString(" || ")
		}
		x.render(b)
	}
}

func writeParens(b *strings.Builder, x node) {
	b.WriteByte('(')
	x.render(b)
	b.WriteByte(')')
}

// writeQuoted quotes v with a quote it does not contain. The lexer ends a
// string at the first matching quote, so a parsed value never contains
// both kinds.
func writeQuoted(b *strings.Builder, v string) {
	q := byte('"')
	if strings.IndexByte(v, '"') >= 0 {
		q = '\''
	}
	b.WriteByte(q)
	b.WriteString(v)
	b.WriteByte(q)
}
