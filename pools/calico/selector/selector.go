package selector

import (
	"fmt"
	"strings"
)

// Limits on what Parse accepts, so a hostile selector cannot exhaust the
// webhook. Real pool selectors are a few dozen bytes and rarely nest.
const (
	// MaxBytes bounds the input and its canonical rendering.
	MaxBytes = 4096
	// MaxDepth bounds the nesting of parentheses.
	MaxDepth = 32
)

// Selector is a parsed Calico selector. It is immutable and safe for
// concurrent use; copy it freely.
//
// The zero Selector is not a valid selector: it matches nothing, and its
// String is "!all()". Parse returns it with every error, so a selector
// that failed to parse can never behave as match-all.
//
// Selectors are not comparable with ==: the parsed tree holds slices, and
// comparing it would panic at run time, so the compiler refuses instead.
// Compare String() values, which are canonical.
type Selector struct {
	_    [0]func() // not comparable
	root node      // nil only in the zero value
	text string    // canonical rendering, computed once by Parse
}

// Parse parses a Calico selector. A blank string is all(), as in Calico,
// which treats an IPPool without nodeSelector or namespaceSelector as
// selecting everything. Every error wraps ErrInvalid; syntax errors are
// *SyntaxError and say the position and what was expected there.
func Parse(s string) (Selector, error) {
	if len(s) > MaxBytes {
		return Selector{}, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrInvalid, len(s), MaxBytes)
	}
	root, err := newParser(s).parse()
	if err != nil {
		return Selector{}, err
	}
	var b strings.Builder
	root.render(&b)
	// Canonical text can be a little longer than the input (spaces, quotes).
	// Refusing it here keeps the promise that String always parses again.
	if b.Len() > MaxBytes {
		return Selector{}, fmt.Errorf("%w: %d bytes once normalized, more than the %d allowed", ErrInvalid, b.Len(), MaxBytes)
	}
	return Selector{root: root, text: b.String()}, nil
}

// Matches reports whether the selector selects an object with these
// labels; a nil map has no labels. The zero Selector matches nothing.
func (s Selector) Matches(labels map[string]string) bool {
	if s.root == nil {
		return false
	}
	return s.root.match(labels)
}

// String returns the canonical rendering: Parse of it gives a selector that
// matches exactly the same label maps, and renders to the same text. The
// zero Selector renders as "!all()", which matches nothing, as it does.
func (s Selector) String() string {
	if s.root == nil {
		return "!all()"
	}
	return s.text
}

// IsZero reports whether s is the zero Selector, the one Parse returns
// with an error.
func (s Selector) IsZero() bool { return s.root == nil }
