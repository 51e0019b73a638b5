package selector

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; an error wraps ErrInvalid and comes with
// the zero Selector, which matches nothing; an accepted selector stays
// within the limits, and its String parses again to the same text and
// matches identically on fixed label maps and on maps built from the
// input's own keys and values. The seed corpus is testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		sel, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", in, err)
			}
			if !sel.IsZero() || sel.Matches(nil) || sel.Matches(labels{"a": "b"}) {
				t.Fatalf("Parse(%q) failed but returned a usable Selector", in)
			}
			return
		}
		if len(in) > MaxBytes || len(sel.String()) > MaxBytes {
			t.Fatalf("Parse accepted %d bytes, rendered as %d", len(in), len(sel.String()))
		}
		checkRoundTrip(t, in, append(labelsFrom(in), probeLabels...))
	})
}

// labelsFrom builds label maps from the words and quoted strings of a
// fuzz input, so that its comparisons can come out true as well as false.
func labelsFrom(in string) []labels {
	var keys, values []string
	for i := 0; i < len(in) && len(keys) < 16; {
		switch c := in[i]; {
		case c == '"' || c == '\'':
			end := strings.IndexByte(in[i+1:], c)
			if end < 0 {
				i = len(in)
				continue
			}
			values = append(values, in[i+1:i+1+end])
			i += end + 2
		case isKeyByte(c):
			j := i
			for j < len(in) && isKeyByte(in[j]) {
				j++
			}
			keys = append(keys, in[i:j])
			i = j
		default:
			i++
		}
	}
	values = append(values, "")
	var out []labels
	for shift := range 3 {
		m := labels{}
		for i, k := range keys {
			if (i+shift)%3 != 0 { // leave some keys absent
				m[k] = values[(i+shift)%len(values)]
			}
		}
		out = append(out, m)
	}
	return out
}
