package allocator

import (
	"fmt"
	"math/big"
	"net/netip"
	"strings"
)

// Range is one pool's address range as the allocator cuts it into
// blocks: all the allocator knows of a pool. Which pools a pod may draw
// from is decided before, by policy.ChoosePools; the caller turns each
// chosen pool into its Range.
type Range struct {
	// Pool is the pool's name, recorded in its blocks and claims.
	Pool string
	// CIDR is the pool's range.
	CIDR netip.Prefix
	// BlockSize is the prefix length of the range's blocks, resolved by
	// the caller (an IPPool's blockSize or its family's default). One no
	// longer than the CIDR's, 0 included, makes the range a single block
	// that every node shares.
	BlockSize int
	// InUse is set when the pool carries the allocations finalizer; the
	// allocator adds it before the pool's first allocation.
	InUse bool
}

// BlockBits returns the prefix length of the range's blocks: BlockSize,
// but never shorter than the range itself, so a range smaller than a
// block is one block.
func (r Range) BlockBits() int {
	return max(r.BlockSize, r.CIDR.Bits())
}

// Shared reports whether the pool is a single block used by every node.
func (r Range) Shared() bool { return r.BlockBits() == r.CIDR.Bits() }

// NumBlocks returns how many blocks the pool has (huge for IPv6).
func (r Range) NumBlocks() *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(r.BlockBits()-r.CIDR.Bits()))
}

// BlockAt returns the i-th block of the pool; ok is false past the end.
func (r Range) BlockAt(i *big.Int) (netip.Prefix, bool) {
	if i.Sign() < 0 || i.Cmp(r.NumBlocks()) >= 0 {
		return netip.Prefix{}, false
	}
	off := new(big.Int).Lsh(i, uint(r.CIDR.Addr().BitLen()-r.BlockBits()))
	return netip.PrefixFrom(addOffset(r.CIDR.Addr(), off), r.BlockBits()), true
}

// Capacity returns how many addresses the pool can hand out.
func (r Range) Capacity() *big.Int {
	n := new(big.Int).Lsh(big.NewInt(1), uint(r.CIDR.Addr().BitLen()-r.CIDR.Bits()))
	return n.Sub(n, big.NewInt(int64(len(reservedOf(r.CIDR)))))
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
