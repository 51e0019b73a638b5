package selector

import "testing"

// probeLabels are label maps on which a selector and the parse of its
// String must agree, beyond each case's own maps.
var probeLabels = []labels{
	nil,
	{},
	{"a": "b"},
	{"a": "x", "b": "y", "c": "z"},
	{"a": `"`, "b": "'"},
	{"my-label": "production", "role": "frontend"},
	{"projectcalico.org/name": "foo", "kubernetes.io/metadata.name": "payments"},
}

// TestRoundTrip: for every accepted selector in the tables, String parses
// again, to the same text, and matches exactly the same label maps.
func TestRoundTrip(t *testing.T) {
	var inputs []string
	var maps []labels
	maps = append(maps, probeLabels...)
	for _, tc := range validSelectors {
		inputs = append(inputs, tc.in)
	}
	for _, tc := range matchCases {
		inputs = append(inputs, tc.sel)
		maps = append(maps, tc.match...)
		maps = append(maps, tc.noMatch...)
	}
	for _, in := range inputs {
		checkRoundTrip(t, in, maps)
	}
}

// checkRoundTrip is shared with FuzzParse. in must parse.
func checkRoundTrip(t *testing.T, in string, maps []labels) {
	t.Helper()
	sel, err := Parse(in)
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	canon := sel.String()
	again, err := Parse(canon)
	if err != nil {
		t.Fatalf("Parse(%q) is %q, which does not parse: %v", in, canon, err)
	}
	if again.String() != canon {
		t.Fatalf("String is not a fixed point: %q -> %q -> %q", in, canon, again.String())
	}
	for _, l := range maps {
		if sel.Matches(l) != again.Matches(l) {
			t.Fatalf("%q and its canonical form %q disagree on %v: %v vs %v", in, canon, l, sel.Matches(l), again.Matches(l))
		}
	}
}
