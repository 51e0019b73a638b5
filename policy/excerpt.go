package policy

import (
	"fmt"
	"unicode/utf8"
)

// MaxQuotedBytes bounds how much of a client's value poolguard repeats back
// in a denial, a warning or an event. A denial must say which value is
// wrong, not echo a quarter megabyte back to the client and into the
// cluster's event store.
const MaxQuotedBytes = 256

// Excerpt returns s when it is at most MaxQuotedBytes long, and otherwise
// its first MaxQuotedBytes bytes (cut on a UTF-8 boundary) followed by how
// long the whole value was.
func Excerpt(s string) string {
	if len(s) <= MaxQuotedBytes {
		return s
	}
	cut := MaxQuotedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes in all)", s[:cut], len(s))
}
