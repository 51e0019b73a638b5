package poolseed

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name  string
		data  string
		pools []string // names, in order
		errs  []string // one per refused entry, in order
	}{
		{"empty", "", nil, nil},
		{"empty list", "[]", nil, nil},
		{"two pools", `
- name: trusted
  spec: {cidr: 198.51.100.0/24, assignmentMode: Manual, namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: payments}}}
- name: general
  spec: {cidr: 203.0.113.0/24, blockSize: 28}
`, []string{"trusted", "general"}, nil},
		{"JSON", `[{"name":"v6","spec":{"cidr":"2001:db8::/48"}}]`, []string{"v6"}, nil},
		{"misspelt field", "- name: typo\n  spec: {cdir: 198.51.100.0/24}\n", nil, []string{`ippools[0] (typo)`, "cdir"}},
		{"field outside spec", "- name: p\n  cidr: 198.51.100.0/24\n  spec: {cidr: 198.51.100.0/24}\n", nil, []string{"ippools[0]", "cidr"}},
		{"no name", "- spec: {cidr: 198.51.100.0/24}\n", nil, []string{"ippools[0] has no name"}},
		{"bad name", "- name: Trusted_Pool\n  spec: {cidr: 198.51.100.0/24}\n", nil, []string{`name "Trusted_Pool"`}},
		{"no spec", "- name: bare\n", nil, []string{"(bare) has no spec"}},
		{"duplicate, first kept", "- name: p\n  spec: {cidr: 198.51.100.0/24}\n- name: p\n  spec: {cidr: 203.0.113.0/24}\n", []string{"p"}, []string{`"p" is listed twice`}},
		{"good ones survive a bad one", "- name: a\n  spec: {cidr: 198.51.100.0/24}\n- name: b\n  spec: {cidr: 203.0.113.0/24, blockSize: big}\n- name: c\n  spec: {cidr: 198.18.0.0/24}\n",
			[]string{"a", "c"}, []string{"ippools[1] (b)"}},
		{"not a list", "trusted: {cidr: 198.51.100.0/24}\n", nil, []string{"is not a list"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pools, errs := Parse([]byte(tc.data))
			var names []string
			for _, p := range pools {
				names = append(names, p.Name)
				if p.Spec["cidr"] == nil {
					t.Errorf("pool %s lost its spec: %v", p.Name, p.Spec)
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.pools, ",") {
				t.Errorf("pools %v, want %v", names, tc.pools)
			}
			wantErrs := 0
			if len(tc.errs) > 0 {
				wantErrs = 1
			}
			if len(errs) != wantErrs {
				t.Fatalf("errors %v, want %d", errs, wantErrs)
			}
			for _, err := range errs {
				if !errors.Is(err, ErrBadPool) {
					t.Errorf("%v does not wrap ErrBadPool", err)
				}
				for _, w := range tc.errs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			}
		})
	}
}

// TestParseKeepsSpecAsWritten: the applied spec carries only the fields
// values set, so that the webhook's defaults are not overwritten by zero
// values and the seed's field manager owns nothing else.
func TestParseKeepsSpecAsWritten(t *testing.T) {
	pools, errs := Parse([]byte("- name: p\n  spec: {cidr: 198.51.100.0/24}\n"))
	if len(errs) > 0 || len(pools) != 1 {
		t.Fatalf("%v %v", pools, errs)
	}
	if len(pools[0].Spec) != 1 {
		t.Errorf("spec = %v, want only cidr", pools[0].Spec)
	}
}
