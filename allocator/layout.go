package allocator

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"

	"poolguard.dev/poolguard/policy"
)

// Pool is a pool as the allocator sees it: the policy's model plus the
// geometry and bookkeeping the allocator needs.
type Pool struct {
	policy.Pool
	// BlockSize is the configured prefix length of blocks; 0 means the
	// family's default.
	BlockSize int
	// InUse is set when the pool carries the allocations finalizer; the
	// allocator adds it before the pool's first allocation.
	InUse bool
}

// BlockBits returns the prefix length of the pool's blocks: the configured
// (or default) block size, but never shorter than the pool itself, so a
// pool smaller than a block is one block.
func (p Pool) BlockBits() int {
	b := p.BlockSize
	if b == 0 {
		b = policy.DefaultBlockSize(p.Family())
	}
	if b < p.CIDR.Bits() {
		b = p.CIDR.Bits()
	}
	return b
}

// Shared reports whether the pool is a single block used by every node.
func (p Pool) Shared() bool { return p.BlockBits() == p.CIDR.Bits() }

// NumBlocks returns how many blocks the pool has (huge for IPv6).
func (p Pool) NumBlocks() *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(p.BlockBits()-p.CIDR.Bits()))
}

// BlockAt returns the i-th block of the pool; ok is false past the end.
func (p Pool) BlockAt(i *big.Int) (netip.Prefix, bool) {
	if i.Sign() < 0 || i.Cmp(p.NumBlocks()) >= 0 {
		return netip.Prefix{}, false
	}
	off := new(big.Int).Lsh(i, uint(p.CIDR.Addr().BitLen()-p.BlockBits()))
	return netip.PrefixFrom(addOffset(p.CIDR.Addr(), off), p.BlockBits()), true
}

// Capacity returns how many addresses the pool can hand out.
func (p Pool) Capacity() *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), uint(p.CIDR.Addr().BitLen()-p.CIDR.Bits()))
	return n.Sub(n, big.NewInt(int64(len(reservedOf(p.CIDR)))))
}

// reservedOf lists the addresses of a pool never handed out (see the
// package documentation).
func reservedOf(pool netip.Prefix) []netip.Addr {
	if pool.Addr().Is4() {
		if pool.Bits() <= 30 {
			return []netip.Addr{pool.Addr(), lastAddr(pool)}
		}
		return nil
	}
	if pool.Bits() <= 126 {
		return []netip.Addr{pool.Addr()}
	}
	return nil
}

// Reserved reports whether addr is one of the pool's reserved addresses.
func Reserved(pool netip.Prefix, addr netip.Addr) bool {
	for _, r := range reservedOf(pool) {
		if r == addr {
			return true
		}
	}
	return false
}

// lastAddr returns the last address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// addOffset returns a + off.
func addOffset(a netip.Addr, off *big.Int) netip.Addr {
	n := new(big.Int).SetBytes(a.AsSlice())
	n.Add(n, off)
	buf := make([]byte, a.BitLen()/8)
	n.FillBytes(buf)
	out, _ := netip.AddrFromSlice(buf)
	return out
}

// offsetOf returns a - base as an int (callers keep it within a block).
func offsetOf(base, a netip.Addr) int {
	x := new(big.Int).SetBytes(a.AsSlice())
	x.Sub(x, new(big.Int).SetBytes(base.AsSlice()))
	return int(x.Int64())
}

// BlockName returns the deterministic object name of the block with this
// CIDR. Pools never overlap, so the CIDR alone names a block uniquely; its
// determinism is what makes creating the block an atomic claim.
// 198.18.0.64/26 -> 198-18-0-64-26; 2001:db8::40/122 ->
// 2001-0db8-0000-0000-0000-0000-0000-0040-122.
func BlockName(cidr netip.Prefix) string {
	a := cidr.Addr()
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-") + fmt.Sprintf("-%d", cidr.Bits())
	}
	b := a.As16()
	parts := make([]string, 8)
	for i := range parts {
		parts[i] = fmt.Sprintf("%02x%02x", b[2*i], b[2*i+1])
	}
	return strings.Join(parts, "-") + fmt.Sprintf("-%d", cidr.Bits())
}
