package poolctl

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"poolguard.dev/poolguard/policy"
)

// referenceCheck is what drift said about a pod before it remembered
// shapes and located pools: every verdict worked out from scratch for
// each pod, every pool scanned for each address.
func referenceCheck(pod Pod, ns policy.Namespace, ix *policy.Index, rules policy.Rules) []Finding {
	var out []Finding
	add := func(kind Kind, fam, format string, args ...any) {
		out = append(out, Finding{Namespace: pod.Namespace, Pod: pod.Name, Kind: kind, Family: fam, Detail: fmt.Sprintf(format, args...)})
	}
	frozen, err := rules.ReadFrozen(ns.Name, pod.Annotations)
	var fp *policy.Frozen
	if err != nil {
		add(KindUnfrozen, "", "%v (%s)", err, unfrozenWhy(ns, rules))
	} else {
		fp = &frozen
		now := rules.Freeze(recreated(pod.Annotations, fp), ns, ix, nil)
		subject := policy.Subject{Namespace: ns, NodeLabels: pod.NodeLabels}
		for _, fam := range policy.Families {
			if d := differs(fam, frozen, now); d != "" {
				add(KindDrift, fam.String(), "%s", d)
			}
			if frozen.Value(fam) == nil {
				continue
			}
			for _, v := range familyPools(fam, frozen, subject, ix, rules, &frozen.Provenance).Pools {
				if !v.Allowed {
					add(KindStale, fam.String(), "pool %q can no longer serve the pod: %s", v.Ref, v.Why)
				}
			}
		}
	}
	for _, ip := range pod.IPs {
		where := "in no IPPool"
		for _, p := range ix.All() {
			if p.CIDR.IsValid() && p.CIDR.Contains(ip) {
				where = fmt.Sprintf("in pool %q (%s)", p.Name, p.CIDR)
				break
			}
		}
		fam := policy.IPv4
		if !ip.Is4() {
			fam = policy.IPv6
		}
		spans, what := expectedSpans(fam, fp, ns, ix)
		if !slices.ContainsFunc(spans, func(s span) bool { return s.prefix.Contains(ip) }) {
			add(KindAddress, familyOf(ip.String()), "%s lies %s, outside %s: %s", ip, where, what, spanList(spans))
		}
	}
	return out
}

// variedPods returns pods of every shape drift tells apart, many of each,
// in a few namespaces: frozen under the namespace's default then and now,
// naming their own pools, unfrozen, forged, on a node with labels, with
// addresses in, between and outside the pools.
func variedPods(rng *rand.Rand, ix *policy.Index, rules policy.Rules, namespaces []policy.Namespace) []Pod {
	then := ns("payments", v4("general"), nil)
	then.ResourceVersion = "1"
	owns := []map[string]string{nil, v4("trusted"), v4("general", "rack-a"), {policy.AnnotationIPv6Pools: `["v6"]`}, v4("off"), v4("broken")}
	var addrs []netip.Addr
	for _, p := range ix.All() {
		addrs = append(addrs, p.CIDR.Addr().Next(), p.CIDR.Addr().Next().Next())
	}
	addrs = append(addrs, netip.MustParseAddr("198.19.0.1"), netip.MustParseAddr("2001:db8:9::1"), netip.MustParseAddr("::ffff:198.51.100.7"))
	var out []Pod
	for i := 0; i < 2000; i++ {
		n := namespaces[rng.IntN(len(namespaces))]
		own := owns[rng.IntN(len(owns))]
		var ann map[string]string
		switch rng.IntN(6) {
		case 0:
			ann = own // never passed the webhook
		case 1:
			ann = map[string]string{policy.AnnotationProvenance: `{"ipv4pools":"pod"}`} // forged
		case 2:
			ann = rules.Freeze(own, then, ix, nil).Apply(clone(own)) // under an older default
		default:
			ann = rules.Freeze(own, n, ix, nil).Apply(clone(own))
		}
		pod := Pod{Namespace: n.Name, Name: fmt.Sprintf("p-%04d", i), Annotations: ann, HostNetwork: rng.IntN(40) == 0, Finished: rng.IntN(40) == 0}
		for range rng.IntN(3) {
			pod.IPs = append(pod.IPs, addrs[rng.IntN(len(addrs))])
		}
		if rng.IntN(5) == 0 {
			pod.NodeLabels = map[string]string{"rack": []string{"a", "b"}[rng.IntN(2)]}
		}
		out = append(out, pod)
	}
	return out
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+3)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestDriftAsBefore: over pods of every shape, in both modes, Drift says
// exactly what checking each pod from scratch said before shapes were
// remembered, and Check exactly the same per pod.
func TestDriftAsBefore(t *testing.T) {
	ix := testIndex()
	namespaces := []policy.Namespace{
		ns("payments", v4("trusted"), nil), ns("web", nil, nil), ns("quiet", v4("general"), nil),
		ns("legacy", nil, map[string]string{policy.LabelOptOut: "true"}), ns("kube-system", nil, nil),
	}
	byName := map[string]policy.Namespace{}
	for _, n := range namespaces[:4] { // kube-system is missing from the map
		byName[n.Name] = n
	}
	for _, rules := range []policy.Rules{{}, {PinDefaults: true}} {
		pods := variedPods(rand.New(rand.NewPCG(1, 2)), ix, rules, namespaces)
		want := DriftReport{Findings: []Finding{}}
		for _, pod := range pods {
			switch {
			case pod.HostNetwork:
				want.HostNetwork++
				continue
			case pod.Finished:
				want.Finished++
				continue
			}
			want.Checked++
			n, ok := byName[pod.Namespace]
			if !ok {
				n = policy.Namespace{Name: pod.Namespace}
			}
			ref := referenceCheck(pod, n, ix, rules)
			want.Findings = append(want.Findings, ref...)
			if got := Check(pod, n, ix, rules); !reflect.DeepEqual(got, ref) {
				t.Fatalf("%+v: Check\n  %+v\nwant\n  %+v", pod, got, ref)
			}
		}
		slices.SortStableFunc(want.Findings, func(a, b Finding) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod),
				cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]), cmp.Compare(a.Family, b.Family))
		})
		got := Drift(pods, byName, ix, rules)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("PinDefaults=%v: Drift differs from checking each pod from scratch:\n got %d findings %+v\nwant %d findings %+v",
				rules.PinDefaults, len(got.Findings), got.Findings[:min(5, len(got.Findings))], len(want.Findings), want.Findings[:min(5, len(want.Findings))])
		}
		if len(want.Findings) < 100 || want.HostNetwork == 0 || want.Finished == 0 {
			t.Errorf("PinDefaults=%v: only %d findings, %d hostNetwork, %d finished: the pods are not varied enough to prove anything", rules.PinDefaults, len(want.Findings), want.HostNetwork, want.Finished)
		}
	}
}

// TestPoolLocator: the pool an address lies in is the one a pass over the
// pools finds first, also among nested, duplicate and invalid ranges.
func TestPoolLocator(t *testing.T) {
	pfx := netip.MustParsePrefix
	pools := append(testPools(),
		policy.Pool{Name: "outer", CIDR: pfx("198.18.0.0/16")}, // holds payments-auto, off, rack-a: all invalid
		policy.Pool{Name: "twin", CIDR: pfx("198.51.100.0/25")},
		policy.Pool{Name: "no-range"},
		policy.Pool{Name: "mapped", CIDR: pfx("::ffff:0:0/96")},
		policy.Pool{Name: "host", CIDR: pfx("203.0.113.200/32")},
		policy.Pool{Name: "v6-inner", CIDR: pfx("2001:db8::40/122")},
		policy.Pool{Name: "unmasked", CIDR: netip.PrefixFrom(netip.MustParseAddr("198.51.100.201"), 29)},
	)
	for _, order := range [][]policy.Pool{pools, reversed(pools)} {
		ix := policy.NewIndex(order)
		loc := newPoolLocator(ix)
		rng := rand.New(rand.NewPCG(3, 4))
		var ips []netip.Addr
		for _, p := range ix.All() {
			if p.CIDR.IsValid() {
				ips = append(ips, p.CIDR.Addr(), p.CIDR.Addr().Prev(), p.CIDR.Masked().Addr().Next())
			}
		}
		for range 2000 {
			b := [16]byte{0x20, 0x01, 0x0d, 0xb8}
			b[15], b[14] = byte(rng.IntN(256)), byte(rng.IntN(2))
			ips = append(ips, netip.AddrFrom4([4]byte{198, byte(18 + rng.IntN(34)), byte(rng.IntN(256)), byte(rng.IntN(256))}),
				netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(256))}), netip.AddrFrom16(b))
		}
		ips = append(ips, netip.MustParseAddr("::ffff:198.51.100.7"), netip.MustParseAddr("2001:db8::41%eth0"), netip.Addr{})
		for _, ip := range ips {
			want, wantOK := policy.Pool{}, false
			for _, p := range ix.All() {
				if p.CIDR.IsValid() && p.CIDR.Contains(ip) {
					want, wantOK = p, true
					break
				}
			}
			if got, ok := loc.find(ip); ok != wantOK || got.Name != want.Name {
				t.Errorf("%s: located in %q (%v), a pass finds %q (%v)", ip, got.Name, ok, want.Name, wantOK)
			}
		}
	}
}

func reversed(ps []policy.Pool) []policy.Pool {
	out := slices.Clone(ps)
	slices.Reverse(out)
	return out
}
