package selector

import (
	"errors"
	"strings"
	"testing"
)

// validSelectors maps accepted inputs to their canonical rendering. The
// round-trip test reuses them.
var validSelectors = []struct {
	name, in, want string
}{
	{"empty is all", "", "all()"},
	{"blank is all", " \t ", "all()"},
	{"all", "all()", "all()"},
	{"all with inner blank", "all( )", "all()"},
	{"global", " global() ", "global()"},
	{"not all", "!all()", "!all()"},
	{"has", "has(a)", "has(a)"},
	{"has with blanks", "has( \tteam )", "has(team)"},
	{"not has", "! has(a)", "!has(a)"},
	{"double negation removed", "!!has(a)", "has(a)"},
	{"triple negation", "! !!has(a)", "!has(a)"},
	{"parenthesised double negation", "!(!has(a))", "has(a)"},
	{"eq single quotes", "a == 'b'", `a == "b"`},
	{"eq double quotes", `a == "b"`, `a == "b"`},
	{"eq no blanks", "a=='b'", `a == "b"`},
	{"tabs", "a\t==\t'b'", `a == "b"`},
	{"eq empty value", "a == ''", `a == ""`},
	{"ne", "a!='b'", `a != "b"`},
	{"value with double quote keeps single quotes", `a == '"'`, `a == '"'`},
	{"value with single quote", `a == "'"`, `a == "'"`},
	{"value with blanks and symbols", `a == 'x y&&||!()'`, `a == "x y&&||!()"`},
	{"contains", "a contains 'x'", `a contains "x"`},
	{"contains without blank", "a contains'x'", `a contains "x"`},
	{"starts with", "a starts with 'x'", `a starts with "x"`},
	{"startswith as Calico accepts", "a startswith 'x'", `a starts with "x"`},
	{"ends with", "a ends  with 'x'", `a ends with "x"`},
	{"in", "a in {'x','y'}", `a in {"x", "y"}`},
	{"in without blank", "a in{'x'}", `a in {"x"}`},
	{"in sorted and deduplicated", "a in {'z', 'x', 'y', 'x'}", `a in {"x", "y", "z"}`},
	{"in empty set", "a in {}", "a in {}"},
	{"in trailing comma as Calico accepts", "a in {'x',}", `a in {"x"}`},
	{"not in", "a not in {'x'}", `a not in {"x"}`},
	{"notin as Calico accepts", "a notin {'x'}", `a not in {"x"}`},
	{"prefixed key", "projectcalico.org/name == 'payments'", `projectcalico.org/name == "payments"`},
	{"kubernetes key", "kubernetes.io/metadata.name in {'a', 'b'}", `kubernetes.io/metadata.name in {"a", "b"}`},
	{"key characters", "A_b-9.x/y-Z == 'v'", `A_b-9.x/y-Z == "v"`},
	{"key named like a keyword", "all == 'x' && has == 'y' && in == 'z'", `all == "x" && has == "y" && in == "z"`},
	{"and", "a == 'x' && b == 'y'", `a == "x" && b == "y"`},
	{"or", "a == 'x' || b == 'y'", `a == "x" || b == "y"`},
	{"and binds tighter than or", "a == 'x' || b == 'y' && c == 'z'", `a == "x" || b == "y" && c == "z"`},
	{"parens keep or inside and", "(a == 'x' || b == 'y') && c == 'z'", `(a == "x" || b == "y") && c == "z"`},
	{"redundant parens dropped", "((a == 'x')) && (b == 'y')", `a == "x" && b == "y"`},
	{"nested and flattened", "(a == 'x' && b == 'y') && c == 'z'", `a == "x" && b == "y" && c == "z"`},
	{"nested or flattened", "a == 'x' || (b == 'y' || c == 'z')", `a == "x" || b == "y" || c == "z"`},
	{"not binds tighter than and", "!a == 'x' && b == 'y'", `!a == "x" && b == "y"`},
	{"not of group", "!(a == 'x' && b == 'y')", `!(a == "x" && b == "y")`},
	{"not of single in parens", "!(a == 'x')", `!a == "x"`},
	{"Calico's documented example",
		"! has(my-label) || my-label starts with 'prod' && role in {'frontend','business'}",
		`!has(my-label) || my-label starts with "prod" && role in {"business", "frontend"}`},
	{"non-ASCII value", "a == 'żółw'", `a == "żółw"`},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validSelectors {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if sel.IsZero() {
				t.Fatalf("Parse(%q) returned the zero Selector", tc.in)
			}
			if got := sel.String(); got != tc.want {
				t.Fatalf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		pos      int // 1-based position the error names; 0 for limit errors
		frag     string
	}{
		{"bare label", "a", 2, `expected an operator (==, !=, in, not in, contains, starts with or ends with) after label "a", found the end of the selector`},
		{"label then label", "a b", 3, `after label "a", found "b"`},
		{"label == label", "a == b", 6, `expected a quoted string after "==", found "b"`},
		{"contains label", "a contains b", 12, `expected a quoted string after "contains", found "b"`},
		{"literal on the left", "'b' == a", 1, `expected an expression such as all(), has(k), k == 'v', "!" or "(", found "'b'"`},
		{"single =", "a = 'b'", 3, `after label "a", found "="`},
		{"single = not after label", "= 'b'", 1, `expected "==", found "="`},
		{"missing value", "a ==", 5, `expected a quoted string after "==", found the end of the selector`},
		{"single &", "a == 'b' & c == 'd'", 10, `expected "&&", found a single "&"`},
		{"single |", "a == 'b' | c == 'd'", 10, `expected "||", found a single "|"`},
		{"dangling and", "has(a) &&", 10, `expected an expression such as all(), has(k), k == 'v', "!" or "(", found the end of the selector`},
		{"dangling or", "has(a) ||", 10, `found the end of the selector`},
		{"lone not", "!", 2, `found the end of the selector`},
		{"ne then or", "foo != ||", 8, `expected a quoted string after "!=", found "||"`},
		{"set not closed", `foo in {"", ||`, 13, `expected a quoted string or "}" in the set, found "||"`},
		{"set without braces", `foo in "x"`, 8, `expected "{" to start the set of values after "in", found "\"x\""`},
		{"set leading comma", `foo in {,'x'}`, 9, `expected a quoted string or "}" in the set, found ","`},
		{"set missing comma", `foo in {'x' 'y'}`, 13, `expected "," or "}" after a value in the set, found "'y'"`},
		{"not without in", "a not {'x'}", 7, `expected "in" after "not", found "{"`},
		{"starts without with", "a starts 'x'", 10, `expected "with" after "starts", found "'x'"`},
		{"ends without with", "a ends", 7, `expected "with" after "ends", found the end of the selector`},
		{"unterminated double", `a == "FOO`, 6, `unterminated string: no closing " for this "`},
		{"unterminated mixed", `a == "FOO'`, 6, `unterminated string`},
		{"unterminated single", `a == 'FOO`, 6, `unterminated string: no closing ' for this '`},
		{"open paren", "(", 2, `found the end of the selector`},
		{"unclosed paren", "(a == 'foo'", 12, `expected ")" to close the "(" at position 1, found the end of the selector`},
		{"stray close paren", ")", 1, `found ")"`},
		{"extra close paren", "a == 'x')", 9, `found ")" with no matching "("`},
		{"empty parens", "()", 2, `found ")"`},
		{"unexpected char", "%", 1, `unexpected character "%"`},
		{"unexpected char later", `a == "b" && %`, 13, `unexpected character "%"`},
		{"trailing garbage", "has(a) has(b)", 8, `expected "&&", "||" or the end of the selector, found "has(b)"`},
		{"newline is not whitespace", "has(a) &&\nhas(b)", 10, `unexpected character "\n"`},
		{"non-ASCII outside a string", "a == 'b' && ä", 13, `unexpected character "ä"`},
		{"position counts characters", "a == 'żółw' b", 13, `found "b"`},
		{"has without label", "has()", 5, `expected a label name inside "has(", found ")"`},
		{"has not closed", "has(a", 6, `expected ")" to close "has(a", found the end of the selector`},
		{"has with two labels", "has(a b)", 7, `expected ")" to close "has(a", found "b"`},
		{"has with space before paren", "has (a)", 5, `after label "has", found "("`},
		{"all with argument", "all(a)", 5, `expected ")" after "all(" (it takes no arguments), found "a"`},
		{"global not closed", "global(", 8, `expected ")" after "global("`},
		{"long literal shortened in the message", "a == 'b' '" + strings.Repeat("x", 60) + "'", 10, `found "'` + strings.Repeat("x", 39) + `..."`},
		{"too long", strings.Repeat(" ", MaxBytes) + "all()", 0, "4101 bytes, more than the 4096 allowed"},
		{"too deep", strings.Repeat("(", MaxDepth+1) + "all()" + strings.Repeat(")", MaxDepth+1), MaxDepth + 1, "parentheses nested more than 32 deep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want an error", tc.in, sel)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", tc.in, err)
			}
			if !strings.Contains(err.Error(), tc.frag) {
				t.Fatalf("Parse(%q) error %q does not contain %q", tc.in, err, tc.frag)
			}
			var se *SyntaxError
			if tc.pos == 0 {
				if errors.As(err, &se) {
					t.Fatalf("Parse(%q): limit error %v should not be a SyntaxError", tc.in, err)
				}
			} else if !errors.As(err, &se) || se.Position != tc.pos {
				t.Fatalf("Parse(%q) error %v: want a SyntaxError at position %d", tc.in, err, tc.pos)
			}
			// Fail closed: what Parse returns with an error matches nothing.
			if !sel.IsZero() || sel.Matches(nil) || sel.Matches(map[string]string{"a": "b"}) {
				t.Fatalf("Parse(%q) returned a usable Selector %q with its error", tc.in, sel)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse("zone == 'a' &&& has(x)")
	want := `invalid Calico selector: at position 15: expected "&&", found a single "&"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestParseLimitsAtTheEdge(t *testing.T) {
	deep := strings.Repeat("(", MaxDepth) + "has(a)" + strings.Repeat(")", MaxDepth)
	if _, err := Parse(deep); err != nil {
		t.Fatalf("nesting of exactly MaxDepth refused: %v", err)
	}
	long := "a == '" + strings.Repeat("x", MaxBytes-len("a == ''")) + "'"
	sel, err := Parse(long)
	if err != nil {
		t.Fatalf("selector of exactly MaxBytes refused: %v", err)
	}
	if len(sel.String()) != MaxBytes {
		t.Fatalf("canonical length %d, want %d", len(sel.String()), MaxBytes)
	}
	// Canonical text is longer than this input (spaces around ==): refused,
	// so that String of an accepted selector always parses again.
	grow := "a=='" + strings.Repeat("x", MaxBytes-len("a==''")) + "'"
	if _, err := Parse(grow); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "once normalized") {
		t.Fatalf("Parse of a selector whose canonical form exceeds MaxBytes: %v", err)
	}
}

func TestZeroSelector(t *testing.T) {
	var zero Selector
	if !zero.IsZero() || zero.Matches(nil) || zero.Matches(map[string]string{}) || zero.Matches(map[string]string{"a": "b"}) {
		t.Fatal("the zero Selector must match nothing")
	}
	again, err := Parse(zero.String())
	if err != nil {
		t.Fatalf("zero.String() = %q does not parse: %v", zero.String(), err)
	}
	if again.Matches(nil) || again.Matches(map[string]string{"a": "b"}) {
		t.Fatalf("zero.String() = %q matches something", zero.String())
	}
}
