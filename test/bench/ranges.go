package bench

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// CheckRanges fails, naming the culprit, when one of the ranges overlaps an
// address or a (non-default) route of the machine's root network namespace
// (SPEC §5): these machines sit in a documentation range themselves, and a
// pool over their own network would be a trap for whoever reuses the
// fixture for real traffic.
func CheckRanges(ranges []netip.Prefix) error {
	var used []netip.Prefix
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("listing the machine's addresses: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	used = append(used, routes()...)
	for _, r := range ranges {
		for _, u := range used {
			if u.Bits() > 0 && !u.Addr().IsLoopback() && r.Overlaps(u) {
				return fmt.Errorf("benchmark range %s overlaps %s on this machine's root network namespace; pick another documentation range", r, u)
			}
		}
	}
	return nil
}

// routes reads the root namespace's IPv4 and IPv6 routes from /proc; a
// missing file (no IPv6) just means no routes of that family.
func routes() []netip.Prefix {
	var out []netip.Prefix
	if f, err := os.Open("/proc/net/route"); err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		s.Scan() // header
		for s.Scan() {
			fs := strings.Fields(s.Text())
			if len(fs) < 8 {
				continue
			}
			dst, err1 := strconv.ParseUint(fs[1], 16, 32)
			mask, err2 := strconv.ParseUint(fs[7], 16, 32)
			if err1 != nil || err2 != nil {
				continue
			}
			// The kernel prints these in host (little-endian) byte order.
			var d, m [4]byte
			binary.LittleEndian.PutUint32(d[:], uint32(dst))
			binary.LittleEndian.PutUint32(m[:], uint32(mask))
			bits, _ := net.IPMask(m[:]).Size()
			out = append(out, netip.PrefixFrom(netip.AddrFrom4(d), bits).Masked())
		}
	}
	if f, err := os.Open("/proc/net/ipv6_route"); err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			fs := strings.Fields(s.Text())
			if len(fs) < 2 {
				continue
			}
			b, err1 := hex.DecodeString(fs[0])
			bits, err2 := strconv.ParseInt(fs[1], 16, 32)
			if err1 != nil || err2 != nil || len(b) != 16 {
				continue
			}
			out = append(out, netip.PrefixFrom(netip.AddrFrom16([16]byte(b)), int(bits)).Masked())
		}
	}
	return out
}
