package netlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// CheckRootFree fails, naming the culprit, when one of the ranges overlaps
// an address or a route of the root network namespace (default routes
// aside, which overlap everything): the lab would then shadow or be
// shadowed by the machine's own network.
func CheckRootFree(ranges ...netip.Prefix) error {
	type addrInfo struct {
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	}
	type link struct {
		IfName   string     `json:"ifname"`
		AddrInfo []addrInfo `json:"addr_info"`
	}
	type route struct {
		Dst string `json:"dst"`
		Dev string `json:"dev"`
	}
	var used []struct {
		p    netip.Prefix
		what string
	}
	for _, fam := range []string{"-4", "-6"} {
		out, err := ip("-j", fam, "addr")
		if err != nil {
			return err
		}
		var links []link
		if err := json.Unmarshal([]byte(out), &links); err != nil {
			return fmt.Errorf("parsing ip -j %s addr: %w", fam, err)
		}
		for _, l := range links {
			for _, a := range l.AddrInfo {
				ad, err := netip.ParseAddr(a.Local)
				if err != nil {
					continue
				}
				used = append(used, struct {
					p    netip.Prefix
					what string
				}{netip.PrefixFrom(ad, a.PrefixLen).Masked(), fmt.Sprintf("address %s/%d on %s", a.Local, a.PrefixLen, l.IfName)})
			}
		}
		out, err = ip("-j", fam, "route", "show", "table", "all")
		if err != nil {
			return err
		}
		var routes []route
		if err := json.Unmarshal([]byte(out), &routes); err != nil {
			return fmt.Errorf("parsing ip -j %s route: %w", fam, err)
		}
		for _, r := range routes {
			p, err := netip.ParsePrefix(r.Dst)
			if err != nil {
				a, aerr := netip.ParseAddr(r.Dst)
				if aerr != nil {
					continue // "default" and the like
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if p.Bits() == 0 {
				continue
			}
			used = append(used, struct {
				p    netip.Prefix
				what string
			}{p.Masked(), fmt.Sprintf("route %s dev %s", r.Dst, r.Dev)})
		}
	}
	for _, r := range ranges {
		for _, u := range used {
			if r.Overlaps(u.p) {
				return fmt.Errorf("range %s overlaps %s of this machine's root network namespace; the lab must not shadow the machine's own network: pick another documentation range", r, u.what)
			}
		}
	}
	return nil
}
