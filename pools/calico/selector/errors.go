package selector

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrInvalid is wrapped by every error Parse returns: the selector is not
// valid Calico selector syntax or exceeds a limit. A pool whose selector
// fails with it must be treated as unusable.
var ErrInvalid = errors.New("invalid Calico selector")

// SyntaxError says where a selector went wrong and what was expected there,
// in words for the person who reads it in an admission denial. It wraps
// ErrInvalid.
type SyntaxError struct {
	// Offset is the byte offset of the problem in the input.
	Offset int
	// Position is the 1-based character position, which is what a person
	// counts.
	Position int
	// Msg says what was expected and what was found.
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s: at position %d: %s", ErrInvalid, e.Position, e.Msg)
}

// Unwrap lets errors.Is find ErrInvalid.
func (e *SyntaxError) Unwrap() error { return ErrInvalid }

// syntaxError builds a SyntaxError at byte offset off of src.
func syntaxError(src string, off int, format string, args ...any) error {
	return &SyntaxError{
		Offset:   off,
		Position: position(src, off),
		Msg:      fmt.Sprintf(format, args...),
	}
}

// position is the 1-based character position of byte offset off.
func position(src string, off int) int { return utf8.RuneCountInString(src[:off]) + 1 }
