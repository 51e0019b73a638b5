package policy

import (
	"fmt"
	"net/netip"
)

// Block size bounds per family. Blocks larger than these make one node hold
// too much of a pool; smaller ones make too many objects.
const (
	DefaultBlockSizeV4 = 26
	DefaultBlockSizeV6 = 122
	MinBlockSizeV4     = 20
	MaxBlockSizeV4     = 32
	MinBlockSizeV6     = 116
	MaxBlockSizeV6     = 128
)

// ParsePoolCIDR parses a pool's CIDR and insists on the canonical form: a
// CIDR with host bits set is almost always a typo of the range someone
// meant, and in front of a firewall a typo is a hole.
func ParsePoolCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: cidr %q is not a CIDR: %v", ErrInvalidPool, s, err)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%w: cidr %q has a zone", ErrInvalidPool, s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%w: cidr %q is an IPv4-mapped IPv6 range; write the IPv4 range", ErrInvalidPool, s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%w: cidr %q has host bits set; did you mean %s?", ErrInvalidPool, s, m)
	}
	return p, nil
}

// DefaultBlockSize returns the block size used when a pool sets none.
func DefaultBlockSize(f Family) int {
	if f == IPv6 {
		return DefaultBlockSizeV6
	}
	return DefaultBlockSizeV4
}

// CheckBlockSize checks a pool's block size against its family's bounds.
// A block larger than the pool is allowed: the allocator then uses the whole
// pool as one block shared by all nodes.
func CheckBlockSize(f Family, size int) error {
	lo, hi := MinBlockSizeV4, MaxBlockSizeV4
	if f == IPv6 {
		lo, hi = MinBlockSizeV6, MaxBlockSizeV6
	}
	if size < lo || size > hi {
		return fmt.Errorf("%w: blockSize %d is out of range for %s pools (%d to %d)", ErrInvalidPool, size, f, lo, hi)
	}
	return nil
}

// FindOverlap returns a pool, other than the one named self, whose range
// overlaps cidr.
func FindOverlap(self string, cidr netip.Prefix, pools []Pool) (Pool, bool) {
	for _, p := range pools {
		if p.Name != self && p.CIDR.Overlaps(cidr) {
			return p, true
		}
	}
	return Pool{}, false
}
