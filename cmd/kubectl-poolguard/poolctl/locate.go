package poolctl

import (
	"net/netip"
	"slices"

	"poolguard.dev/poolguard/policy"
)

// poolLocator finds the pool an address lies in without a pass over
// every pool: drift places each address of every pod, and a cluster may
// have a thousand pools. The answer is the one a pass would give: the
// first pool of the index whose range holds the address (pools overlap
// only when they are invalid, and nest then, so more than one can).
type poolLocator struct {
	ix *policy.Index
	// byLen maps each range, masked, to the index of the first pool with
	// that range, per address length (32, 128); lengths lists the prefix
	// lengths in use per address length.
	byLen   map[int]map[netip.Prefix]int
	lengths map[int][]int
}

func newPoolLocator(ix *policy.Index) *poolLocator {
	l := &poolLocator{ix: ix, byLen: map[int]map[netip.Prefix]int{}, lengths: map[int][]int{}}
	for i, p := range ix.All() {
		if !p.CIDR.IsValid() {
			continue
		}
		n := p.CIDR.Addr().BitLen()
		m := l.byLen[n]
		if m == nil {
			m = map[netip.Prefix]int{}
			l.byLen[n] = m
		}
		key := p.CIDR.Masked()
		if _, seen := m[key]; !seen {
			m[key] = i
		}
		if !slices.Contains(l.lengths[n], p.CIDR.Bits()) {
			l.lengths[n] = append(l.lengths[n], p.CIDR.Bits())
		}
	}
	return l
}

// find returns the pool ip lies in.
func (l *poolLocator) find(ip netip.Addr) (policy.Pool, bool) {
	if ip.Zone() != "" {
		// netip.Prefix.Contains holds no zoned address.
		return policy.Pool{}, false
	}
	n := ip.BitLen()
	best := -1
	for _, bits := range l.lengths[n] {
		pfx, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		if i, ok := l.byLen[n][pfx]; ok && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return policy.Pool{}, false
	}
	return l.ix.All()[best], true
}
