package selector

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// kind is the kind of a token.
type kind uint8

const (
	tEOF kind = iota
	tErr      // a lexical error; the parser reports it where it meets it
	tLabel
	tString
	tLParen
	tRParen
	tLBrace
	tRBrace
	tComma
	tNot
	tAnd
	tOr
	tEq
	tNe
	tIn
	tNotIn
	tContains
	tStartsWith
	tEndsWith
	tAll
	tGlobal
	tHas
)

// token is one lexeme. val is the key of a label or has(), or the unquoted
// value of a string; pos and end delimit its text in the input.
type token struct {
	kind kind
	val  string
	pos  int
	end  int
}

// lexer splits a selector into tokens. Like Calico's tokenizer it is
// context-sensitive in one place only: after a label, the next token must
// be an operator. That is why keys and operator words such as "in" or
// "contains" never get mixed up.
type lexer struct {
	src       string
	pos       int
	prev      kind   // kind of the previous token
	prevLabel string // its key, when it was a label
}

// isBlank reports Calico's whitespace: space and tab, nothing else.
func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// isKeyByte reports the bytes of a label key as Calico lexes them.
func isKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}

func (l *lexer) skipBlanks() {
	for l.pos < len(l.src) && isBlank(l.src[l.pos]) {
		l.pos++
	}
}

// key consumes a label key at the current position; "" if there is none.
func (l *lexer) key() string {
	start := l.pos
	for l.pos < len(l.src) && isKeyByte(l.src[l.pos]) {
		l.pos++
	}
	return l.src[start:l.pos]
}

func (l *lexer) tok(k kind, start int, val string) token {
	return token{kind: k, val: val, pos: start, end: l.pos}
}

// next returns the next token, or an error at the first byte that cannot
// start one. Every token consumes at least one byte, so the input size
// bounds the work.
func (l *lexer) next() (token, error) {
	t, err := l.scan()
	if err == nil {
		l.prev, l.prevLabel = t.kind, t.val
	}
	return t, err
}

func (l *lexer) scan() (token, error) {
	l.skipBlanks()
	start := l.pos
	if l.prev == tLabel {
		return l.operator(start)
	}
	if l.pos == len(l.src) {
		return l.tok(tEOF, start, ""), nil
	}
	rest := l.src[l.pos:]
	if k, n := punct(rest); n > 0 {
		l.pos += n
		return l.tok(k, start, ""), nil
	}
	switch c := rest[0]; {
	case c == '"' || c == '\'':
		return l.str(start, c)
	case c == '=':
		return token{}, syntaxError(l.src, start, `expected "==", found "="`)
	case c == '&':
		return token{}, syntaxError(l.src, start, `expected "&&", found a single "&"`)
	case c == '|':
		return token{}, syntaxError(l.src, start, `expected "||", found a single "|"`)
	case strings.HasPrefix(rest, "has("):
		return l.has(start)
	case strings.HasPrefix(rest, "all("):
		return l.noArgs(start, tAll, "all(")
	case strings.HasPrefix(rest, "global("):
		return l.noArgs(start, tGlobal, "global(")
	case isKeyByte(c):
		k := l.key()
		return l.tok(tLabel, start, k), nil
	}
	return token{}, syntaxError(l.src, start, "unexpected character %s", describeAt(l.src, start))
}

// punct recognises the punctuation tokens that need no context.
func punct(s string) (kind, int) {
	switch s[0] {
	case '(':
		return tLParen, 1
	case ')':
		return tRParen, 1
	case '{':
		return tLBrace, 1
	case '}':
		return tRBrace, 1
	case ',':
		return tComma, 1
	case '!':
		if strings.HasPrefix(s, "!=") {
			return tNe, 2
		}
		return tNot, 1
	}
	switch {
	case strings.HasPrefix(s, "=="):
		return tEq, 2
	case strings.HasPrefix(s, "&&"):
		return tAnd, 2
	case strings.HasPrefix(s, "||"):
		return tOr, 2
	}
	return tEOF, 0
}

// The operators that may follow a label. None is a prefix of another, so
// the order of the checks does not matter.
var (
	oneWordOps = []struct {
		text string
		kind kind
	}{{"==", tEq}, {"!=", tNe}, {"contains", tContains}, {"in", tIn}}
	twoWordOps = []struct {
		first, second string
		kind          kind
	}{{"not", "in", tNotIn}, {"starts", "with", tStartsWith}, {"ends", "with", tEndsWith}}
)

// operatorList is what may follow a label, for error messages.
const operatorList = `==, !=, in, not in, contains, starts with or ends with`

// operator lexes the operator that must follow a label. Operator words are
// matched as prefixes, without requiring a space after them, exactly as
// Calico's tokenizer does ("k in{'a'}", "k startswith 'x'").
func (l *lexer) operator(start int) (token, error) {
	rest := l.src[l.pos:]
	for _, op := range oneWordOps {
		if strings.HasPrefix(rest, op.text) {
			l.pos += len(op.text)
			return l.tok(op.kind, start, ""), nil
		}
	}
	for _, op := range twoWordOps {
		if !strings.HasPrefix(rest, op.first) {
			continue
		}
		l.pos += len(op.first)
		l.skipBlanks()
		if !strings.HasPrefix(l.src[l.pos:], op.second) {
			return token{}, syntaxError(l.src, l.pos, "expected %q after %q, found %s",
				op.second, op.first, describeAt(l.src, l.pos))
		}
		l.pos += len(op.second)
		return l.tok(op.kind, start, ""), nil
	}
	return token{}, syntaxError(l.src, start, "expected an operator (%s) after label %q, found %s",
		operatorList, l.prevLabel, describeAt(l.src, start))
}

// str lexes a string quoted with q. There are no escapes: the value ends at
// the next q.
func (l *lexer) str(start int, q byte) (token, error) {
	end := strings.IndexByte(l.src[start+1:], q)
	if end < 0 {
		return token{}, syntaxError(l.src, start, "unterminated string: no closing %c for this %c", q, q)
	}
	l.pos = start + 1 + end + 1
	return l.tok(tString, start, l.src[start+1:start+1+end]), nil
}

// has lexes has(key), blanks allowed inside the parentheses.
func (l *lexer) has(start int) (token, error) {
	l.pos += len("has(")
	l.skipBlanks()
	k := l.key()
	if k == "" {
		return token{}, syntaxError(l.src, l.pos, `expected a label name inside "has(", found %s`, describeAt(l.src, l.pos))
	}
	l.skipBlanks()
	if l.pos == len(l.src) || l.src[l.pos] != ')' {
		return token{}, syntaxError(l.src, l.pos, `expected ")" to close "has(%s", found %s`, k, describeAt(l.src, l.pos))
	}
	l.pos++
	return l.tok(tHas, start, k), nil
}

// noArgs lexes all() or global(), blanks allowed inside the parentheses.
func (l *lexer) noArgs(start int, k kind, open string) (token, error) {
	l.pos += len(open)
	l.skipBlanks()
	if l.pos == len(l.src) || l.src[l.pos] != ')' {
		return token{}, syntaxError(l.src, l.pos, `expected ")" after %q (it takes no arguments), found %s`, open, describeAt(l.src, l.pos))
	}
	l.pos++
	return l.tok(k, start, ""), nil
}

// describeAt names what a person would see at off: a key-like word, a
// quoted string, one character, or the end of the selector.
func describeAt(src string, off int) string {
	if off >= len(src) {
		return "the end of the selector"
	}
	if q := src[off]; q == '"' || q == '\'' {
		if end := strings.IndexByte(src[off+1:], q); end >= 0 && end < 40 {
			return fmt.Sprintf("%q", src[off:off+1+end+1])
		}
	}
	end := off
	for end < len(src) && isKeyByte(src[end]) && end-off < 40 {
		end++
	}
	if end == off {
		_, n := utf8.DecodeRuneInString(src[off:])
		end = off + n
	}
	return fmt.Sprintf("%q", src[off:end])
}
