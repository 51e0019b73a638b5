package selector

import "fmt"

// parser is a recursive-descent parser, one function per precedence level:
//
//	or      = and { "||" and }
//	and     = unary { "&&" unary }
//	unary   = { "!" } primary
//	primary = all() | global() | has(k) | k op string | k [not] in set | "(" or ")"
//
// Recursion happens only at "(", and depth counts it, so MaxDepth bounds
// the stack.
//
// It pulls tokens from the lexer one at a time, so an error is reported at
// the first token the grammar cannot take, with what the grammar expected
// there: `a == b` says a string was expected, not that b lacks an operator.
type parser struct {
	src    string
	lx     lexer
	cur    token // the next token, not yet consumed
	lexErr error // set when cur is tErr
	depth  int
}

func newParser(src string) *parser {
	p := &parser{src: src, lx: lexer{src: src, prev: tEOF}}
	p.cur = p.lex()
	return p
}

// lex reads one token; a lexical error becomes a tErr token, which no
// grammar rule accepts, so it surfaces through errAt where it is met.
func (p *parser) lex() token {
	t, err := p.lx.next()
	if err != nil {
		p.lexErr = err
		return token{kind: tErr, pos: p.lx.pos, end: p.lx.pos}
	}
	return t
}

func (p *parser) peek() token { return p.cur }

// next consumes and returns the current token; it stays on tEOF or tErr.
func (p *parser) next() token {
	t := p.cur
	if t.kind != tEOF && t.kind != tErr {
		p.cur = p.lex()
	}
	return t
}

// describe names a token for an error message.
func (p *parser) describe(t token) string {
	if t.kind == tEOF {
		return "the end of the selector"
	}
	text := p.src[t.pos:t.end]
	if runes := []rune(text); len(runes) > 40 { // a long string literal
		text = string(runes[:40]) + "..."
	}
	return fmt.Sprintf("%q", text)
}

// errAt reports that t is not what the grammar expected, unless t is a
// lexical error, which is the more precise report.
func (p *parser) errAt(t token, format string, args ...any) error {
	if t.kind == tErr {
		return p.lexErr
	}
	return syntaxError(p.src, t.pos, format, args...)
}

// parse parses the whole input; blank input is all(), as in Calico.
func (p *parser) parse() (node, error) {
	if p.peek().kind == tEOF {
		return allNode{}, nil
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.errAt(t, `found ")" with no matching "("`)
		}
		return nil, p.errAt(t, `expected "&&", "||" or the end of the selector, found %s`, p.describe(t))
	}
	return n, nil
}

func (p *parser) or() (node, error) {
	x, err := p.and()
	if err != nil {
		return nil, err
	}
	xs := []node{x}
	for p.peek().kind == tOr {
		p.next()
		if x, err = p.and(); err != nil {
			return nil, err
		}
		xs = append(xs, x)
	}
	return newOr(xs), nil
}

func (p *parser) and() (node, error) {
	x, err := p.unary()
	if err != nil {
		return nil, err
	}
	xs := []node{x}
	for p.peek().kind == tAnd {
		p.next()
		if x, err = p.unary(); err != nil {
			return nil, err
		}
		xs = append(xs, x)
	}
	return newAnd(xs), nil
}

// unary folds any run of "!" into one negation, or none. A loop, not
// recursion, so "!!!!…" costs no stack.
func (p *parser) unary() (node, error) {
	neg := false
	for p.peek().kind == tNot {
		p.next()
		neg = !neg
	}
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	if neg {
		x = negate(x)
	}
	return x, nil
}

func (p *parser) primary() (node, error) {
	t := p.next()
	switch t.kind {
	case tAll:
		return allNode{}, nil
	case tGlobal:
		return globalNode{}, nil
	case tHas:
		return hasNode{key: t.val}, nil
	case tLabel:
		return p.match(t)
	case tLParen:
		return p.group(t)
	}
	return nil, p.errAt(t, `expected an expression such as all(), has(k), k == 'v', "!" or "(", found %s`, p.describe(t))
}

// group parses a parenthesised expression after its "(".
func (p *parser) group(open token) (node, error) {
	p.depth++
	if p.depth > MaxDepth {
		return nil, p.errAt(open, "parentheses nested more than %d deep", MaxDepth)
	}
	x, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != tRParen {
		return nil, p.errAt(t, `expected ")" to close the "(" at position %d, found %s`,
			position(p.src, open.pos), p.describe(t))
	}
	p.depth--
	return x, nil
}

// match parses the operator and operand after a label. The lexer has
// already made sure an operator follows.
func (p *parser) match(label token) (node, error) {
	opTok := p.next()
	var o op
	switch opTok.kind {
	case tIn, tNotIn:
		return p.set(label, opTok)
	case tEq:
		o = opEq
	case tNe:
		o = opNe
	case tContains:
		o = opContains
	case tStartsWith:
		o = opStartsWith
	case tEndsWith:
		o = opEndsWith
	default:
		return nil, p.errAt(opTok, "expected an operator (%s) after label %q, found %s", operatorList, label.val, p.describe(opTok))
	}
	v := p.next()
	if v.kind != tString {
		return nil, p.errAt(v, "expected a quoted string after %q, found %s", p.src[opTok.pos:opTok.end], p.describe(v))
	}
	return cmpNode{key: label.val, op: o, value: v.val}, nil
}

// set parses {'a', 'b'} after in or not in. As in Calico, the set may be
// empty and may end with a comma.
func (p *parser) set(label, opTok token) (node, error) {
	if t := p.next(); t.kind != tLBrace {
		return nil, p.errAt(t, `expected "{" to start the set of values after %q, found %s`, p.src[opTok.pos:opTok.end], p.describe(t))
	}
	var values []string
	for {
		t := p.next()
		if t.kind == tRBrace {
			break
		}
		if t.kind != tString {
			return nil, p.errAt(t, `expected a quoted string or "}" in the set, found %s`, p.describe(t))
		}
		values = append(values, t.val)
		t = p.next()
		if t.kind == tRBrace {
			break
		}
		if t.kind != tComma {
			return nil, p.errAt(t, `expected "," or "}" after a value in the set, found %s`, p.describe(t))
		}
	}
	return newSet(label.val, values, opTok.kind == tNotIn), nil
}
