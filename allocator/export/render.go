package export

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
)

// List is a selection, ready to render.
type List struct {
	Request Request
	// Pools are the pools of a KindCIDRs list, sorted by range.
	Pools []Pool
	// Addresses are the addresses of a KindPool or KindNamespace list,
	// sorted, each once.
	Addresses []Address
}

// Select builds the list a request asks for from every pool and the
// addresses in use (which may hold more than the request selects: Select
// filters by pool, namespace and family). req must have passed Validate.
// A pool the request names that is not among pools is ErrUnknownPool; a
// namespace without addresses is an empty list, not an error, so that a
// firewall polling an empty namespace keeps working.
func Select(req Request, pools []Pool, addrs []Address) (*List, error) {
	l := &List{Request: req}
	if req.Pool != "" && !slices.ContainsFunc(pools, func(p Pool) bool { return p.Name == req.Pool }) {
		return nil, fmt.Errorf("%w %q", ErrUnknownPool, req.Pool)
	}
	if req.Kind == KindCIDRs {
		for _, p := range pools {
			if (req.Pool == "" || p.Name == req.Pool) && req.Family.Has(p.CIDR.Addr()) {
				l.Pools = append(l.Pools, p)
			}
		}
		sortPools(l.Pools)
		return l, nil
	}
	keys := make([]addrKey, 0, len(addrs))
	for i, a := range addrs {
		if req.Kind == KindNamespace && a.Namespace != req.Namespace {
			continue
		}
		if req.Pool != "" && a.Pool != req.Pool {
			continue
		}
		if req.Family.Has(a.Address) {
			keys = append(keys, keyOf(a.Address, i))
		}
	}
	l.Addresses = sortedAddresses(addrs, keys)
	return l, nil
}

// ContentType is the Content-Type of a format.
func ContentType(f Format) string {
	if f == FormatJSON {
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// Render writes the list in its request's format.
func (l *List) Render(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	var err error
	switch l.Request.Format {
	case FormatNFT:
		l.nft(bw)
	case FormatJSON:
		err = l.json(bw)
	default:
		l.text(bw)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// text writes one address or CIDR per line. An empty list is an empty
// body: the external-list format's empty list.
func (l *List) text(w *bufio.Writer) {
	var buf []byte
	for _, p := range l.Pools {
		buf = p.CIDR.AppendTo(buf[:0])
		buf = append(buf, '\n')
		_, _ = w.Write(buf) // a bufio.Writer keeps its error for Flush
	}
	for _, a := range l.Addresses {
		buf = a.Address.AppendTo(buf[:0])
		buf = append(buf, '\n')
		_, _ = w.Write(buf) // a bufio.Writer keeps its error for Flush
	}
}

// nftChunk is how many elements one add element statement carries; the
// whole script is still one transaction.
const nftChunk = 512

// nft writes a script that nft -f applies as one transaction: the table
// and each set are created when missing (add does not fail on what
// exists), each set is flushed and refilled. A set of each family the
// request covers is written even when empty, so rules that name it keep
// loading. Sets are interval sets with auto-merge, so CIDRs and adjacent
// addresses are taken as they come.
func (l *List) nft(w *bufio.Writer) {
	n := l.Request.NFT
	fmt.Fprintf(w, "#!/usr/sbin/nft -f\n# poolguard export: %s\n", l.describe())
	fmt.Fprintf(w, "add table %s %s\n", n.TableFamily, n.Table)
	for _, fam := range []Family{IPv4, IPv6} {
		if l.Request.Family != AnyFamily && l.Request.Family != fam {
			continue
		}
		typ, suffix := "ipv4_addr", "_v4"
		if fam == IPv6 {
			typ, suffix = "ipv6_addr", "_v6"
		}
		set := fmt.Sprintf("%s %s %s", n.TableFamily, n.Table, n.Set+suffix)
		fmt.Fprintf(w, "add set %s { type %s; flags interval; auto-merge; }\n", set, typ)
		fmt.Fprintf(w, "flush set %s\n", set)
		var elems []netip.Prefix
		for _, p := range l.Pools {
			if fam.Has(p.CIDR.Addr()) {
				elems = append(elems, p.CIDR)
			}
		}
		for _, a := range l.Addresses {
			if fam.Has(a.Address) {
				elems = append(elems, netip.PrefixFrom(a.Address, a.Address.BitLen()))
			}
		}
		var buf []byte
		for i := 0; i < len(elems); i += nftChunk {
			buf = append(buf[:0], "add element "...)
			buf = append(buf, set...)
			buf = append(buf, " { "...)
			for j, e := range elems[i:min(i+nftChunk, len(elems))] {
				if j > 0 {
					buf = append(buf, ", "...)
				}
				if e.IsSingleIP() {
					buf = e.Addr().AppendTo(buf)
				} else {
					buf = e.AppendTo(buf)
				}
			}
			buf = append(buf, " }\n"...)
			_, _ = w.Write(buf) // a bufio.Writer keeps its error for Flush
		}
	}
}

// describe says what the list is, for the nft script's comment. Names are
// Kubernetes names (checked by Validate): nothing that ends a comment.
func (l *List) describe() string {
	r := l.Request
	var s string
	switch r.Kind {
	case KindCIDRs:
		s = "the CIDRs of every pool"
		if r.Pool != "" {
			s = fmt.Sprintf("the CIDR of pool %s", r.Pool)
		}
	case KindPool:
		s = fmt.Sprintf("the addresses in use in pool %s", r.Pool)
	case KindNamespace:
		s = fmt.Sprintf("the addresses of the pods of namespace %s", r.Namespace)
		if r.Pool != "" {
			s += fmt.Sprintf(" in pool %s", r.Pool)
		}
	}
	if r.Family != AnyFamily {
		s += ", " + r.Family.String() + " only"
	}
	return s
}

// jsonList is the JSON format: "pools" for a list of CIDRs, "addresses"
// for a list of addresses, present (possibly empty) as the kind says.
type jsonList struct {
	Kind      Kind       `json:"kind"`
	Pool      string     `json:"pool,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Family    string     `json:"family,omitempty"`
	Pools     *[]Pool    `json:"pools,omitempty"`
	Addresses *[]Address `json:"addresses,omitempty"`
}

func (l *List) json(w io.Writer) error {
	r := l.Request
	out := jsonList{Kind: r.Kind, Pool: r.Pool, Namespace: r.Namespace, Family: r.Family.String()}
	if r.Kind == KindCIDRs {
		pools := l.Pools
		if pools == nil {
			pools = []Pool{}
		}
		out.Pools = &pools
	} else {
		addrs := l.Addresses
		if addrs == nil {
			addrs = []Address{}
		}
		out.Addresses = &addrs
	}
	return json.NewEncoder(w).Encode(out)
}
