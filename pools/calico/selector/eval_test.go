package selector

import "testing"

type labels = map[string]string

// matchCases: each selector with label maps it must match and must not.
// The round-trip test reuses them.
var matchCases = []struct {
	name    string
	sel     string
	match   []labels
	noMatch []labels
}{
	{"all matches everything", "all()", []labels{nil, {}, {"a": "b"}}, nil},
	{"empty selector is all", "", []labels{nil, {"a": "b"}}, nil},
	{"global matches everything", "global()", []labels{nil, {}, {"kubernetes.io/metadata.name": "x"}}, nil},
	{"not all matches nothing", "!all()", nil, []labels{nil, {}, {"a": "b"}}},
	{"eq", "a == 'b'", []labels{{"a": "b"}, {"a": "b", "c": "d"}}, []labels{nil, {}, {"a": "c"}, {"c": "b"}, {"a": "B"}}},
	{"eq empty value needs the label", "a == ''", []labels{{"a": ""}}, []labels{{}, {"a": "x"}}},
	{"ne is true when absent", "a != 'b'", []labels{nil, {}, {"a": "c"}, {"c": "b"}}, []labels{{"a": "b"}}},
	{"has", "has(a)", []labels{{"a": ""}, {"a": "x"}}, []labels{nil, {}, {"b": "a"}}},
	{"not has", "!has(a)", []labels{nil, {}, {"b": "a"}}, []labels{{"a": ""}}},
	{"in needs the label", "a in {'x', 'y'}", []labels{{"a": "x"}, {"a": "y"}}, []labels{nil, {}, {"a": "z"}, {"b": "x"}}},
	{"in empty set matches nothing", "a in {}", nil, []labels{{}, {"a": ""}}},
	{"not in is true when absent", "a not in {'x', 'y'}", []labels{nil, {}, {"a": "z"}, {"b": "x"}}, []labels{{"a": "x"}, {"a": "y"}}},
	{"not in empty set matches everything", "a not in {}", []labels{{}, {"a": "x"}}, nil},
	{"quotes inside values", `a in {"'", '"', "c"}`, []labels{{"a": "'"}, {"a": `"`}, {"a": "c"}}, []labels{{}, {"a": "e"}}},
	{"contains", "a contains 'ab'", []labels{{"a": "ab"}, {"a": "xaby"}}, []labels{nil, {}, {"a": "ba"}, {"b": "ab"}}},
	{"contains empty needs the label", "a contains ''", []labels{{"a": ""}}, []labels{{}}},
	{"starts with", "a starts with 'pro'", []labels{{"a": "prod"}, {"a": "pro"}}, []labels{nil, {"a": "xprod"}, {"b": "prod"}}},
	{"ends with", "a ends with 'od'", []labels{{"a": "prod"}, {"a": "od"}}, []labels{nil, {"a": "prodx"}, {"b": "prod"}}},
	{"negated contains is true when absent", "!a contains 'x'", []labels{{}, {"a": "y"}}, []labels{{"a": "x"}}},
	{"not binds to the match, not the and",
		"!a == 'x' && b == 'y'",
		[]labels{{"b": "y"}, {"a": "z", "b": "y"}},
		[]labels{{"a": "x", "b": "y"}, {}}},
	{"and before or",
		"a == 'x' || b == 'y' && c == 'z'",
		[]labels{{"a": "x"}, {"b": "y", "c": "z"}},
		[]labels{{"b": "y"}, {"c": "z"}, {}}},
	{"parentheses override",
		"(a == 'x' || b == 'y') && c == 'z'",
		[]labels{{"a": "x", "c": "z"}, {"b": "y", "c": "z"}},
		[]labels{{"a": "x"}, {"c": "z"}}},
	{"not of a group",
		"!(has(a) || has(b))",
		[]labels{{}, {"c": "d"}},
		[]labels{{"a": ""}, {"b": ""}}},
	{"Calico's documented example",
		"! has(my-label) || my-label starts with 'prod' && role in {'frontend','business'}",
		[]labels{{}, {"role": "x"}, {"my-label": "production", "role": "business"}},
		[]labels{{"my-label": "production"}, {"my-label": "dev", "role": "frontend"}}},
	{"Calico namespace name label",
		"projectcalico.org/name in {'foo', 'bar'}",
		[]labels{{"projectcalico.org/name": "foo"}},
		[]labels{{"name": "foo"}, {"projectcalico.org/name": "baz"}}},
	{"Kubernetes namespace name label",
		`kubernetes.io/metadata.name == "payments" && !has(quarantine)`,
		[]labels{{"kubernetes.io/metadata.name": "payments", "team": "pay"}},
		[]labels{{"kubernetes.io/metadata.name": "payments", "quarantine": "true"}, {"kubernetes.io/metadata.name": "billing"}}},
	{"node zone with whitespace variants",
		"topology.kubernetes.io/zone\t==\"zone-a\"&&kubernetes.io/os=='linux'",
		[]labels{{"topology.kubernetes.io/zone": "zone-a", "kubernetes.io/os": "linux"}},
		[]labels{{"topology.kubernetes.io/zone": "zone-a"}, {"topology.kubernetes.io/zone": "zone-b", "kubernetes.io/os": "linux"}}},
	{"match is exact, not case-insensitive", "a == 'Prod'", []labels{{"a": "Prod"}}, []labels{{"a": "prod"}, {"A": "Prod"}}},
}

func TestMatches(t *testing.T) {
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := Parse(tc.sel)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.sel, err)
			}
			for _, l := range tc.match {
				if !sel.Matches(l) {
					t.Errorf("%q does not match %v, want match", tc.sel, l)
				}
			}
			for _, l := range tc.noMatch {
				if sel.Matches(l) {
					t.Errorf("%q matches %v, want no match", tc.sel, l)
				}
			}
		})
	}
}

func BenchmarkMatches(b *testing.B) {
	// A typical pool: nodes of one zone and OS, namespaces of one team
	// except those in quarantine, against a realistic node's labels.
	sel, err := Parse(`topology.kubernetes.io/zone in {"eu-1a", "eu-1b"} && kubernetes.io/os == "linux" && !has(node.kubernetes.io/exclude-from-external-load-balancers)`)
	if err != nil {
		b.Fatal(err)
	}
	node := labels{
		"beta.kubernetes.io/arch":          "amd64",
		"beta.kubernetes.io/os":            "linux",
		"kubernetes.io/arch":               "amd64",
		"kubernetes.io/hostname":           "worker-17",
		"kubernetes.io/os":                 "linux",
		"node.kubernetes.io/instance-type": "m6i.large",
		"topology.kubernetes.io/region":    "eu-1",
		"topology.kubernetes.io/zone":      "eu-1b",
	}
	b.ReportAllocs()
	for b.Loop() {
		if !sel.Matches(node) {
			b.Fatal("no match")
		}
	}
}
