package export_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator/export"
	kubestorev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

func testPools() []export.Pool {
	return []export.Pool{
		{Name: "trusted", CIDR: netip.MustParsePrefix("203.0.113.0/25")},
		{Name: "general", CIDR: netip.MustParsePrefix("198.51.100.0/24")},
		{Name: "v6", CIDR: netip.MustParsePrefix("2001:db8::/64")},
	}
}

func addr(ip, pool, ns, pod string) export.Address {
	return export.Address{Address: netip.MustParseAddr(ip), Pool: pool, Namespace: ns, Pod: pod}
}

func testAddresses() []export.Address {
	return []export.Address{
		addr("203.0.113.11", "trusted", "payments", "b"),
		addr("2001:db8::10", "v6", "payments", "a"),
		addr("203.0.113.10", "trusted", "payments", "a"),
		addr("198.51.100.12", "general", "payments", "c"),
		addr("198.51.100.13", "general", "web", "w"),
		addr("2001:db8::13", "v6", "web", "w"),
		// The same address twice (never in a sound store): once.
		addr("198.51.100.13", "general", "web", "w"),
	}
}

// render validates, selects and renders a request.
func render(t *testing.T, req export.Request) (string, error) {
	t.Helper()
	if err := req.Validate(); err != nil {
		return "", err
	}
	l, err := export.Select(req, testPools(), testAddresses())
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := l.Render(&b); err != nil {
		t.Fatal(err)
	}
	return b.String(), nil
}

// TestSelectText: each selection in the external-list format, sorted
// (IPv4 before IPv6, numerically), each address once; an empty namespace
// is an empty list, an unknown pool an error.
func TestSelectText(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  export.Request
		want string
		err  error
	}{
		{"every pool's CIDR", export.Request{Kind: export.KindCIDRs}, "198.51.100.0/24\n203.0.113.0/25\n2001:db8::/64\n", nil},
		{"one pool's CIDR", export.Request{Kind: export.KindCIDRs, Pool: "v6"}, "2001:db8::/64\n", nil},
		{"CIDRs, IPv4", export.Request{Kind: export.KindCIDRs, Family: export.IPv4}, "198.51.100.0/24\n203.0.113.0/25\n", nil},
		{"a pool", export.Request{Kind: export.KindPool, Pool: "trusted"}, "203.0.113.10\n203.0.113.11\n", nil},
		{"a pool, wrong family", export.Request{Kind: export.KindPool, Pool: "trusted", Family: export.IPv6}, "", nil},
		{"a namespace", export.Request{Kind: export.KindNamespace, Namespace: "payments"}, "198.51.100.12\n203.0.113.10\n203.0.113.11\n2001:db8::10\n", nil},
		{"a namespace, IPv6", export.Request{Kind: export.KindNamespace, Namespace: "payments", Family: export.IPv6}, "2001:db8::10\n", nil},
		{"a namespace in a pool", export.Request{Kind: export.KindNamespace, Namespace: "payments", Pool: "general"}, "198.51.100.12\n", nil},
		{"the same address once", export.Request{Kind: export.KindNamespace, Namespace: "web"}, "198.51.100.13\n2001:db8::13\n", nil},
		{"an empty namespace", export.Request{Kind: export.KindNamespace, Namespace: "nobody-here"}, "", nil},
		{"an unknown pool", export.Request{Kind: export.KindPool, Pool: "nope"}, "", export.ErrUnknownPool},
		{"an unknown pool's CIDR", export.Request{Kind: export.KindCIDRs, Pool: "nope"}, "", export.ErrUnknownPool},
		{"a namespace in an unknown pool", export.Request{Kind: export.KindNamespace, Namespace: "payments", Pool: "nope"}, "", export.ErrUnknownPool},
		{"a bad namespace", export.Request{Kind: export.KindNamespace, Namespace: "Payments"}, "", export.ErrInvalid},
		{"a pool list without a pool", export.Request{Kind: export.KindPool}, "", export.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := render(t, tc.req)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestNFT: the script creates the table and one interval set per family
// (both without a family filter, even an empty one), flushes and refills
// each, with the names asked for or the defaults.
func TestNFT(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  export.Request
		want string
	}{
		{"a namespace, both families, defaults", export.Request{Kind: export.KindNamespace, Namespace: "payments", Format: export.FormatNFT}, `#!/usr/sbin/nft -f
# poolguard export: the addresses of the pods of namespace payments
add table inet poolguard
add set inet poolguard ns_payments_v4 { type ipv4_addr; flags interval; auto-merge; }
flush set inet poolguard ns_payments_v4
add element inet poolguard ns_payments_v4 { 198.51.100.12, 203.0.113.10, 203.0.113.11 }
add set inet poolguard ns_payments_v6 { type ipv6_addr; flags interval; auto-merge; }
flush set inet poolguard ns_payments_v6
add element inet poolguard ns_payments_v6 { 2001:db8::10 }
`},
		{"CIDRs into an ip table: IPv4 only", export.Request{Kind: export.KindCIDRs, Format: export.FormatNFT, NFT: export.NFT{TableFamily: "ip", Table: "filter", Set: "trusted_ranges"}}, `#!/usr/sbin/nft -f
# poolguard export: the CIDRs of every pool, IPv4 only
add table ip filter
add set ip filter trusted_ranges_v4 { type ipv4_addr; flags interval; auto-merge; }
flush set ip filter trusted_ranges_v4
add element ip filter trusted_ranges_v4 { 198.18.0.0/24, 198.51.100.0/24, 203.0.113.0/25 }
`},
		{"an empty list keeps its set", export.Request{Kind: export.KindNamespace, Namespace: "empty", Family: export.IPv6, Format: export.FormatNFT}, `#!/usr/sbin/nft -f
# poolguard export: the addresses of the pods of namespace empty, IPv6 only
add table inet poolguard
add set inet poolguard ns_empty_v6 { type ipv6_addr; flags interval; auto-merge; }
flush set inet poolguard ns_empty_v6
`},
		{"a pool with a dotted name", export.Request{Kind: export.KindPool, Pool: "dmz.v4-a", Format: export.FormatNFT, Family: export.IPv4}, `#!/usr/sbin/nft -f
# poolguard export: the addresses in use in pool dmz.v4-a, IPv4 only
add table inet poolguard
add set inet poolguard pool_dmz_v4_a_v4 { type ipv4_addr; flags interval; auto-merge; }
flush set inet poolguard pool_dmz_v4_a_v4
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.req.Validate(); err != nil {
				t.Fatal(err)
			}
			pools := append(testPools(), export.Pool{Name: "dmz.v4-a", CIDR: netip.MustParsePrefix("198.18.0.0/24")})
			l, err := export.Select(tc.req, pools, testAddresses())
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := l.Render(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestNFTChunks: a long list is split into several add element
// statements of the same set, every address once.
func TestNFTChunks(t *testing.T) {
	var addrs []export.Address
	for i := range 1300 {
		addrs = append(addrs, export.Address{Address: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Pool: "bench", Namespace: "n"})
	}
	req := export.Request{Kind: export.KindPool, Pool: "bench", Format: export.FormatNFT, Family: export.IPv4}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	l, err := export.Select(req, []export.Pool{{Name: "bench", CIDR: netip.MustParsePrefix("198.18.0.0/15")}}, addrs)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := l.Render(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if n := strings.Count(s, "add element inet poolguard pool_bench_v4 { "); n != 3 {
		t.Errorf("%d add element statements, want 3 (1300 in chunks of 512)", n)
	}
	if n := strings.Count(s, "198.18."); n != 1300 {
		t.Errorf("%d addresses, want 1300", n)
	}
}

// TestJSON: the list with who holds each address; the kind's key is
// there even when the list is empty.
func TestJSON(t *testing.T) {
	out, err := render(t, export.Request{Kind: export.KindNamespace, Namespace: "payments", Pool: "trusted", Format: export.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"namespace","pool":"trusted","namespace":"payments","addresses":[{"address":"203.0.113.10","pool":"trusted","namespace":"payments","pod":"a"},{"address":"203.0.113.11","pool":"trusted","namespace":"payments","pod":"b"}]}` + "\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	for req, want := range map[export.Request]string{
		{Kind: export.KindNamespace, Namespace: "empty", Format: export.FormatJSON}:               `{"kind":"namespace","namespace":"empty","addresses":[]}`,
		{Kind: export.KindCIDRs, Family: export.IPv6, Format: export.FormatJSON}:                  `{"kind":"cidrs","family":"IPv6","pools":[{"name":"v6","cidr":"2001:db8::/64"}]}`,
		{Kind: export.KindCIDRs, Pool: "trusted", Family: export.IPv6, Format: export.FormatJSON}: `{"kind":"cidrs","pool":"trusted","family":"IPv6","pools":[]}`,
	} {
		out, err := render(t, req)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != want {
			t.Errorf("%+v: got %s, want %s", req, out, want)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Error(err)
		}
	}
}

// TestFromObjects: pools from IPPools (a CIDR that does not parse is left
// out, a range is masked), addresses from IPAMClaims, without those of a
// claim being deleted (already released).
func TestFromObjects(t *testing.T) {
	pools := export.PoolsFromIndex(policy.NewIndex([]policy.Pool{
		{Name: "a", CIDR: netip.MustParsePrefix("198.51.100.0/24")},
		{Name: "bad", Invalid: errors.New("cidr: nope")},
	}))
	if len(pools) != 1 || pools[0].Name != "a" || pools[0].CIDR.String() != "198.51.100.0/24" {
		t.Errorf("pools %+v", pools)
	}
	now := metav1.NewTime(time.Now())
	claim := func(name, ns string, deleting bool, ips ...string) kubestorev1alpha1.IPAMClaim {
		c := kubestorev1alpha1.IPAMClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: kubestorev1alpha1.IPAMClaimSpec{Pod: kubestorev1alpha1.PodReference{Namespace: ns, Name: name}}}
		if deleting {
			c.DeletionTimestamp = &now
		}
		for _, ip := range ips {
			c.Spec.Addresses = append(c.Spec.Addresses, kubestorev1alpha1.ClaimAddress{Pool: "a", Address: ip})
		}
		return c
	}
	got := export.AddressesFromClaims([]kubestorev1alpha1.IPAMClaim{
		claim("live", "payments", false, "198.51.100.10", "2001:db8::10"),
		claim("released", "payments", true, "198.51.100.11"),
		claim("garbled", "web", false, "not-an-ip"),
	})
	var s []string
	for _, a := range got {
		s = append(s, a.Namespace+"/"+a.Pod+" "+a.Address.String())
	}
	if strings.Join(s, ",") != "payments/live 198.51.100.10,payments/live 2001:db8::10" {
		t.Errorf("addresses %q", s)
	}
}

// TestParseQuery: what each parameter does, and every way it is refused.
func TestParseQuery(t *testing.T) {
	ns := export.Request{Kind: export.KindNamespace, Namespace: "payments"}
	pool := export.Request{Kind: export.KindPool, Pool: "trusted"}
	for _, tc := range []struct {
		base  export.Request
		query string
		check func(export.Request) bool
		err   string
	}{
		{ns, "", func(r export.Request) bool { return r.Format == export.FormatText && r.Family == export.AnyFamily }, ""},
		{ns, "format=json&family=6", func(r export.Request) bool { return r.Format == export.FormatJSON && r.Family == export.IPv6 }, ""},
		{ns, "family=IPv4&pool=trusted", func(r export.Request) bool { return r.Family == export.IPv4 && r.Pool == "trusted" }, ""},
		{ns, "format=nft", func(r export.Request) bool {
			return r.NFT == export.NFT{TableFamily: "inet", Table: "poolguard", Set: "ns_payments"}
		}, ""},
		{ns, "format=nft&tablefamily=ip6&table=fw&set=payments", func(r export.Request) bool {
			return r.NFT == export.NFT{TableFamily: "ip6", Table: "fw", Set: "payments"} && r.Family == export.IPv6
		}, ""},
		{ns, "fromat=nft", nil, `unknown query parameter "fromat"`},
		{ns, "format=nft&format=json", nil, `"format" given 2 times`},
		{ns, "format=", nil, `"format" is empty`},
		{ns, "format=yaml", nil, `format "yaml"`},
		{ns, "family=5", nil, `family "5"`},
		{pool, "pool=general", nil, "narrows a namespace's list"},
		{ns, "pool=Not_A_Pool", nil, `pool "Not_A_Pool"`},
		{ns, "table=x", nil, `"table" is for format=nft`},
		{ns, "format=nft&tablefamily=bridge", nil, `table family "bridge"`},
		{ns, "format=nft&tablefamily=ip&family=6", nil, "holds no IPv6 set"},
		{ns, "format=nft&table=" + url.QueryEscape("t; flush ruleset"), nil, `nft table "t; flush ruleset"`},
		{ns, "format=nft&set=" + url.QueryEscape("s }\nflush ruleset #"), nil, `nft set "s }\nflush ruleset #_v4"`},
		{ns, "format=nft&set=" + url.QueryEscape("1abc"), nil, "want a letter"},
		{ns, "format=nft&set=" + strings.Repeat("a", 61), nil, "at most 63"},
		{ns, "format=nft&table=" + strings.Repeat("a", 64), nil, "at most 63"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		r := tc.base
		err = export.ParseQuery(&r, q)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.query, err)
		case tc.err == "" && !tc.check(r):
			t.Errorf("%q: parsed %+v", tc.query, r)
		case tc.err != "" && (err == nil || !errors.Is(err, export.ErrInvalid) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want ErrInvalid containing %q", tc.query, err, tc.err)
		}
	}
}

// nftLine is every line a script may have: what the renderer writes, with
// names and elements of the strict shapes the validation lets through.
var nftLine = regexp.MustCompile(`^(#!/usr/sbin/nft -f|# poolguard export: [A-Za-z0-9 .,:-]+|` +
	`add table (inet|ip|ip6) [A-Za-z][A-Za-z0-9_]*|` +
	`add set (inet|ip|ip6) [A-Za-z][A-Za-z0-9_]* [A-Za-z][A-Za-z0-9_]*_v[46] \{ type ipv[46]_addr; flags interval; auto-merge; \}|` +
	`flush set (inet|ip|ip6) [A-Za-z][A-Za-z0-9_]* [A-Za-z][A-Za-z0-9_]*_v[46]|` +
	`add element (inet|ip|ip6) [A-Za-z][A-Za-z0-9_]* [A-Za-z][A-Za-z0-9_]*_v[46] \{ [0-9a-f.:/, ]+ \})$`)

// FuzzParseQuery: whatever the query, ParseQuery either refuses it with
// ErrInvalid or yields a request whose nft script has only the lines the
// renderer writes: nothing of the query reaches the script unchecked.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "format=nft", "format=nft&table=t&set=s&tablefamily=ip", "format=nft&set=a%20%7D%0Aflush%20ruleset", "family=6&pool=trusted", "format=json"} {
		f.Add(s, uint8(0), "payments")
	}
	kinds := []export.Kind{export.KindNamespace, export.KindPool, export.KindCIDRs}
	f.Fuzz(func(t *testing.T, query string, kind uint8, name string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		r := export.Request{Kind: kinds[int(kind)%len(kinds)]}
		switch r.Kind {
		case export.KindNamespace:
			r.Namespace = name
		case export.KindPool:
			r.Pool = name
		}
		if err := export.ParseQuery(&r, q); err != nil {
			if !errors.Is(err, export.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		pools := []export.Pool{{Name: name, CIDR: netip.MustParsePrefix("198.51.100.0/24")}, {Name: r.Pool, CIDR: netip.MustParsePrefix("2001:db8::/64")}}
		addrs := []export.Address{{Address: netip.MustParseAddr("198.51.100.1"), Pool: name, Namespace: name}}
		l, err := export.Select(r, pools, addrs)
		if err != nil {
			t.Fatal(err)
		}
		r.Format = export.FormatNFT
		if err := r.Validate(); err != nil {
			return // e.g. a name too long for a set's default name: refused
		}
		l.Request = r
		var b bytes.Buffer
		if err := l.Render(&b); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if !nftLine.MatchString(line) {
				t.Fatalf("query %q: script line %q", query, line)
			}
		}
	})
}
