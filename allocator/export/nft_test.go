package export_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"poolguard.dev/poolguard/allocator/export"
)

// scratchNetns creates a network namespace for nft to load scripts into,
// removed when the test ends; it skips without root or without nft.
func scratchNetns(t *testing.T) func(stdin string, args ...string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading nft scripts needs root (a scratch network namespace)")
	}
	for _, tool := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y nftables iproute2)", tool)
		}
	}
	name := fmt.Sprintf("pg-export-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return func(stdin string, args ...string) (string, error) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", name, "nft"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// script renders a request over pools and addresses.
func script(t *testing.T, req export.Request, pools []export.Pool, addrs []export.Address) string {
	t.Helper()
	req.Format = export.FormatNFT
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	l, err := export.Select(req, pools, addrs)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := l.Render(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestNFTLoads: nft itself accepts the scripts, in a scratch network
// namespace: both families' sets of a namespace, a reload that drops an
// address (the flush in the same transaction), an ip table's CIDRs (with
// overlapping pools, which auto-merge takes), an empty set, and a list of
// thousands of addresses in several statements. A rule that names the
// sets loads against them.
func TestNFTLoads(t *testing.T) {
	nft := scratchNetns(t)
	load := func(s string) {
		t.Helper()
		if out, err := nft(s, "-f", "-"); err != nil {
			t.Fatalf("nft -f refused the script: %v\n%s\nscript:\n%s", err, out, s)
		}
	}
	list := func(family, table, set string) string {
		t.Helper()
		out, err := nft("", "list", "set", family, table, set)
		if err != nil {
			t.Fatalf("nft list set %s %s %s: %v\n%s", family, table, set, err, out)
		}
		return out
	}
	ns := export.Request{Kind: export.KindNamespace, Namespace: "payments"}
	load(script(t, ns, testPools(), testAddresses()))
	load(script(t, ns, testPools(), testAddresses())) // again: add is idempotent
	v4, v6 := list("inet", "poolguard", "ns_payments_v4"), list("inet", "poolguard", "ns_payments_v6")
	for _, want := range []string{"198.51.100.12", "203.0.113.10"} {
		if !strings.Contains(v4, want) {
			t.Errorf("v4 set lacks %s:\n%s", want, v4)
		}
	}
	if !strings.Contains(v6, "2001:db8::10") || !strings.Contains(v6, "type ipv6_addr") {
		t.Errorf("v6 set:\n%s", v6)
	}
	// A rule that trusts the namespace's sets.
	load("add chain inet poolguard input { type filter hook input priority 0; }\n" +
		"add rule inet poolguard input ip saddr @ns_payments_v4 accept\n" +
		"add rule inet poolguard input ip6 saddr @ns_payments_v6 accept\n")

	// The pod with 198.51.100.12 is gone: the reload drops it.
	fewer := testAddresses()[:3]
	load(script(t, ns, testPools(), fewer))
	if v4 = list("inet", "poolguard", "ns_payments_v4"); strings.Contains(v4, "198.51.100.12") {
		t.Errorf("the reload kept a released address:\n%s", v4)
	}
	// Overlapping pools' CIDRs into an ip table, and an empty set.
	overlap := append(testPools(), export.Pool{Name: "inner", CIDR: netip.MustParsePrefix("198.51.100.0/25")})
	load(script(t, export.Request{Kind: export.KindCIDRs, NFT: export.NFT{TableFamily: "ip", Table: "fw", Set: "ranges"}}, overlap, nil))
	if out := list("ip", "fw", "ranges_v4"); !strings.Contains(out, "198.51.100.0/24") {
		t.Errorf("CIDR set:\n%s", out)
	}
	load(script(t, export.Request{Kind: export.KindNamespace, Namespace: "empty"}, testPools(), testAddresses()))
	if out := list("inet", "poolguard", "ns_empty_v6"); strings.Contains(out, "elements") {
		t.Errorf("empty set has elements:\n%s", out)
	}
	// 10,000 addresses.
	var many []export.Address
	for i := range 10000 {
		many = append(many, export.Address{Address: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Pool: "bench", Namespace: "n"})
	}
	load(script(t, export.Request{Kind: export.KindPool, Pool: "bench"}, []export.Pool{{Name: "bench", CIDR: netip.MustParsePrefix("198.18.0.0/15")}}, many))
}
