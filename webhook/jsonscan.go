package webhook

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	kjson "sigs.k8s.io/json"
)

// maxJSONDepth is how deeply encoding/json, and so the API server's
// decoder (sigs.k8s.io/json, a fork of it), lets JSON values nest.
const maxJSONDepth = 10000

// Errors of jsonScanner: a text that is not JSON, and a JSON value of
// another type than the one the caller reads.
var (
	errJSONSyntax = errors.New("not valid JSON")
	errJSONType   = errors.New("wrong JSON type")
)

// jsonScanner reads one JSON text in a single pass: it checks the syntax of
// all of it, as encoding/json does before decoding anything, and decodes
// only the members its caller asks for, skipping the rest. encoding/json
// (and sigs.k8s.io/json) scan the input twice, once to check it and once to
// decode it, through a state machine that costs a function call per byte;
// the pod handlers read six fields of a pod of several kilobytes, so the
// scan is what they would spend their time on (BenchmarkPodHandlers).
//
// What a member decodes to is what sigs.k8s.io/json would decode it to:
// keys match exactly (case-sensitively, after unescaping), a later
// duplicate wins, null leaves a string or a bool as it was and makes a map
// nil, a string with \u escapes or invalid UTF-8 is decoded by
// sigs.k8s.io/json itself. TestPodViewDecodesAsTheAPIServer and
// FuzzAdmissionReview check the pod view decoded this way against the
// scheme's decoder (which decodes with sigs.k8s.io/json).
type jsonScanner struct {
	data []byte
	pos  int
}

// plainASCII marks the bytes a string scan can pass over without a
// second look: printable ASCII other than the quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// peek skips white space and returns the next byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// syntaxError describes the byte at the scanner's position.
func (s *jsonScanner) syntaxError(context string) error {
	if s.pos >= len(s.data) {
		return fmt.Errorf("%w: unexpected end of input %s", errJSONSyntax, context)
	}
	return fmt.Errorf("%w: invalid character %q at offset %d %s", errJSONSyntax, s.data[s.pos], s.pos, context)
}

// typeError says that the value at the scanner's position, which is not
// null, is not what field holds.
func (s *jsonScanner) typeError(field, want string) error {
	got := "a number"
	switch s.peek() {
	case '{':
		got = "an object"
	case '[':
		got = "an array"
	case '"':
		got = "a string"
	case 't', 'f':
		got = "a boolean"
	case 0:
		return s.syntaxError("looking for the value of " + field)
	default:
		if c := s.data[s.pos]; c != '-' && (c < '0' || c > '9') {
			return s.syntaxError("looking for the value of " + field)
		}
	}
	return fmt.Errorf("%w: %s is %s, not %s", errJSONType, field, got, want)
}

// end checks that nothing but white space follows the value read.
func (s *jsonScanner) end() error {
	if s.peek() != 0 {
		return s.syntaxError("after top-level value")
	}
	return nil
}

// openObject consumes the '{' the caller peeked and reports whether a
// member follows.
func (s *jsonScanner) openObject() (bool, error) {
	s.pos++
	switch s.peek() {
	case '}':
		s.pos++
		return false, nil
	case '"':
		return true, nil
	}
	return false, s.syntaxError("looking for beginning of object key string")
}

// nextMember consumes what follows a member's value and reports whether
// another member follows.
func (s *jsonScanner) nextMember() (bool, error) {
	switch s.peek() {
	case ',':
		s.pos++
		if s.peek() == '"' {
			return true, nil
		}
		return false, s.syntaxError("looking for beginning of object key string")
	case '}':
		s.pos++
		return false, nil
	}
	return false, s.syntaxError("after object key:value pair")
}

// key reads a member's key and the colon after it. The key is returned
// unescaped; it aliases the input unless it had to be decoded.
func (s *jsonScanner) key() ([]byte, error) {
	tok, simple, err := s.stringToken()
	if err != nil {
		return nil, err
	}
	if s.peek() != ':' {
		return nil, s.syntaxError("after object key")
	}
	s.pos++
	if simple {
		return tok[1 : len(tok)-1], nil
	}
	k, err := unquote(tok)
	return []byte(k), err
}

// stringToken scans the string at the scanner's position, quotes
// included. simple reports that its content is itself: no escape and
// valid UTF-8.
func (s *jsonScanner) stringToken() (tok []byte, simple bool, err error) {
	d := s.data
	start := s.pos
	i := start + 1
	simple, ascii := true, true
	for i < len(d) {
		if plainASCII[d[i]] {
			i++
			continue
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			tok = d[start:s.pos]
			if !ascii && simple {
				simple = utf8.Valid(tok)
			}
			return tok, simple, nil
		case c == '\\':
			simple = false
			if i+1 >= len(d) {
				s.pos = len(d)
				return nil, false, s.syntaxError("in string escape code")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(d) || !isHex(d[j]) {
						s.pos = min(j, len(d))
						return nil, false, s.syntaxError("in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				s.pos = i + 1
				return nil, false, s.syntaxError("in string escape code")
			}
		case c < 0x20:
			s.pos = i
			return nil, false, s.syntaxError("in string literal")
		default: // the bytes of a UTF-8 sequence, valid or not
			ascii = false
			i++
		}
	}
	s.pos = len(d)
	return nil, false, s.syntaxError("in string literal")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unquote decodes a string token with escapes or invalid UTF-8 exactly as
// the API server's decoder does. A pool annotation is a JSON list, so its
// value carries escaped quotes: the one-character escapes of valid UTF-8
// text are decoded here; \u escapes (surrogate pairs, lone surrogates) and
// invalid UTF-8 (replaced, byte by byte) are left to sigs.k8s.io/json
// itself.
func unquote(tok []byte) (string, error) {
	if s, ok := unescapeSimple(tok[1 : len(tok)-1]); ok {
		return s, nil
	}
	var out string
	if err := kjson.UnmarshalCaseSensitivePreserveInts(tok, &out); err != nil {
		return "", fmt.Errorf("%w: %w", errJSONSyntax, err)
	}
	return out, nil
}

// unescapeSimple decodes the content of a checked string token whose
// escapes are all one-character ones, when it is valid UTF-8; ok is false
// otherwise.
func unescapeSimple(content []byte) (string, bool) {
	if !utf8.Valid(content) {
		return "", false
	}
	var out strings.Builder
	out.Grow(len(content))
	for i := 0; i < len(content); i++ {
		c := content[i]
		if c != '\\' {
			out.WriteByte(c)
			continue
		}
		if i++; i == len(content) {
			return "", false
		}
		switch c = content[i]; c {
		case '"', '\\', '/':
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default: // 'u'
			return "", false
		}
		out.WriteByte(c)
	}
	return out.String(), true
}

// readString decodes the value at the scanner's position into dst: a
// string sets it, null leaves it, anything else is a type error.
func (s *jsonScanner) readString(dst *string, field string) error {
	switch s.peek() {
	case '"':
		tok, simple, err := s.stringToken()
		if err != nil {
			return err
		}
		if simple {
			*dst = string(tok[1 : len(tok)-1])
			return nil
		}
		*dst, err = unquote(tok)
		return err
	case 'n':
		return s.literal("null")
	}
	return s.typeError(field, "a string")
}

// readObject reads the object at the scanner's position member by
// member: member gets each key, with the scanner at its value, and must
// consume the value. null reads as nothing (null is true); any other value
// is a type error naming field.
func (s *jsonScanner) readObject(field string, member func(key []byte) error) (null bool, err error) {
	switch s.peek() {
	case 'n':
		return true, s.literal("null")
	case '{':
	default:
		return false, s.typeError(field, "an object")
	}
	more, err := s.openObject()
	for err == nil && more {
		var key []byte
		if key, err = s.key(); err != nil {
			break
		}
		if err = member(key); err == nil {
			more, err = s.nextMember()
		}
	}
	return false, err
}

// readBool decodes the value at the scanner's position into dst: true or
// false sets it, null leaves it, anything else is a type error.
func (s *jsonScanner) readBool(dst *bool, field string) error {
	switch s.peek() {
	case 't':
		*dst = true
		return s.literal("true")
	case 'f':
		*dst = false
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.typeError(field, "a boolean")
}

// literal consumes the literal word at the scanner's position.
func (s *jsonScanner) literal(word string) error {
	if rest := s.data[s.pos:]; len(rest) < len(word) || string(rest[:len(word)]) != word {
		// Point at the first byte that differs.
		for i := 0; i < len(word) && s.pos < len(s.data) && s.data[s.pos] == word[i]; i++ {
			s.pos++
		}
		return s.syntaxError("in literal " + word)
	}
	s.pos += len(word)
	return nil
}

// skip checks and passes over the value at the scanner's position, which
// sits inside depth open objects and arrays.
func (s *jsonScanner) skip(depth int) error {
	switch c := s.peek(); c {
	case '{':
		if depth >= maxJSONDepth {
			return s.syntaxError("exceeding the maximum nesting depth")
		}
		more, err := s.openObject()
		for err == nil && more {
			if _, _, err = s.stringToken(); err != nil {
				break
			}
			if s.peek() != ':' {
				return s.syntaxError("after object key")
			}
			s.pos++
			if err = s.skip(depth + 1); err == nil {
				more, err = s.nextMember()
			}
		}
		return err
	case '[':
		if depth >= maxJSONDepth {
			return s.syntaxError("exceeding the maximum nesting depth")
		}
		s.pos++
		if s.peek() == ']' {
			s.pos++
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return nil
			default:
				return s.syntaxError("after array element")
			}
		}
	case '"':
		_, _, err := s.stringToken()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return s.number()
	}
	return s.syntaxError("looking for beginning of value")
}

// number passes over a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	d, i := s.data, s.pos
	digits := func() bool {
		start := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return i > start
	}
	fail := func() error {
		s.pos = i
		return s.syntaxError("in numeric literal")
	}
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		return fail()
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			return fail()
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			return fail()
		}
	}
	s.pos = i
	return nil
}
