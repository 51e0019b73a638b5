package calico

import (
	"net/netip"

	"poolguard.dev/poolguard/policy"
)

// parseLoose parses a CIDR as Calico stores it: Calico masks host bits
// rather than refusing them, so a pool written 198.51.100.7/24 is the
// range 198.51.100.0/24. Anything policy.ParsePoolCIDR refuses for another
// reason (a zone, a v4-mapped range) is still refused.
func parseLoose(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return policy.ParsePoolCIDR(p.Masked().String())
}
