package poolctl

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"poolguard.dev/poolguard/policy"
)

// Pools of the unit tests, in the documentation and benchmark ranges only.
func testPools() []policy.Pool {
	byName := func(ns string) policy.Selector {
		return labels.SelectorFromSet(labels.Set{policy.LabelNamespaceName: ns})
	}
	return []policy.Pool{
		{Name: "general", CIDR: netip.MustParsePrefix("198.51.100.0/25")},
		{Name: "trusted", CIDR: netip.MustParsePrefix("203.0.113.0/25"), Manual: true, NamespaceSelector: byName("payments")},
		{Name: "payments-auto", CIDR: netip.MustParsePrefix("198.18.0.0/24"), NamespaceSelector: byName("payments")},
		{Name: "off", CIDR: netip.MustParsePrefix("198.18.1.0/24"), Disabled: true},
		{Name: "rack-a", CIDR: netip.MustParsePrefix("198.18.2.0/24"), NodeSelector: labels.SelectorFromSet(labels.Set{"rack": "a"})},
		{Name: "broken", CIDR: netip.MustParsePrefix("203.0.113.128/25"), Invalid: fmt.Errorf("%w: nodeSelector: bad", policy.ErrInvalidPool)},
		{Name: "v6", CIDR: netip.MustParsePrefix("2001:db8::/64")},
	}
}

func testIndex() *policy.Index { return policy.NewIndex(testPools()) }

func ns(name string, ann map[string]string, lbl map[string]string) policy.Namespace {
	return policy.Namespace{Name: name, Annotations: ann, Labels: lbl, ResourceVersion: "7"}
}

// v4 is an ipv4pools annotation naming pools.
func v4(pools ...string) map[string]string {
	return map[string]string{policy.AnnotationIPv4Pools: policy.FormatPoolList(pools)}
}

// frozenPod returns a pod with the annotations the webhook writes.
func frozenPod(name string, own map[string]string, n policy.Namespace, ix *policy.Index, ips ...string) Pod {
	ann := map[string]string{}
	for k, v := range own {
		ann[k] = v
	}
	ann = policy.Freeze(ann, n, ix).Apply(ann)
	return Pod{Namespace: n.Name, Name: name, Annotations: ann, IPs: addrs(ips...)}
}

func addrs(ips ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ips {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// verdicts summarises families as "IPv4 pod trusted=yes" lines, with the
// reason for a "no", so a table test can name what it expects.
func verdicts(fams []FamilyPools) []string {
	var out []string
	for _, f := range fams {
		for _, p := range f.Pools {
			s := fmt.Sprintf("%s %s %s=%s", f.Family, dash(string(f.Source)), p.Ref, yesNo(p.Allowed))
			if p.Why != "" {
				s += ": " + p.Why
			}
			out = append(out, s)
		}
		if len(f.Pools) == 0 {
			out = append(out, fmt.Sprintf("%s %s none", f.Family, dash(string(f.Source))))
		}
	}
	return out
}

// wantLines checks that every wanted line is a prefix-and-substring match
// of one line of got: "IPv4 pod trusted=no|namespaceSelector" wants a line
// starting "IPv4 pod trusted=no" that contains "namespaceSelector".
func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		prefix, sub, _ := strings.Cut(w, "|")
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, prefix) && strings.Contains(g, sub) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no line %q (containing %q) in:\n  %s", prefix, sub, strings.Join(got, "\n  "))
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{fmt.Errorf("%w: 3 findings", ErrFound), ExitFound},
		{fmt.Errorf("%w: cannot list pods", ErrForbidden), ExitError},
		{errors.New("connection refused"), ExitError},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
