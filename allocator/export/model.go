// Package export is the model and the renderers of the live export for
// firewalls (SPEC §7): the CIDRs of the pools, and the addresses in use per
// pool and per namespace, as plain text (one address or CIDR per line, the
// external-list format PAN-OS and FortiGate poll), as an nft script that
// atomically replaces a set, or as JSON.
//
// It is pure (no I/O, no Kubernetes client): the webhook's export server
// (webhook/exportserver) and the kubectl plugin (kubectl poolguard export)
// read the same objects with their own credentials and render with this
// package, so the two cannot disagree about what a list holds.
package export

import (
	"cmp"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"

	kubestorev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// Errors of the selections and the parameter parsing; callers map them to
// HTTP statuses or exit codes.
var (
	// ErrUnknownPool: the request names a pool that does not exist.
	ErrUnknownPool = errors.New("unknown pool")
	// ErrAddressesUnknown: the addresses in use are not known here (Calico
	// mode, or native mode with another IPAM allocating): only the pool
	// CIDRs can be exported.
	ErrAddressesUnknown = errors.New("the addresses in use are not known")
	// ErrInvalid: a parameter is missing, repeated, unknown or not valid.
	ErrInvalid = errors.New("invalid request")
)

// Family is an address family filter: AnyFamily, IPv4 or IPv6.
type Family int

// The families.
const (
	AnyFamily Family = 0
	IPv4      Family = 4
	IPv6      Family = 6
)

// String returns "IPv4", "IPv6" or "" for AnyFamily.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return ""
}

// Has reports whether the filter lets an address of family f through.
func (f Family) Has(a netip.Addr) bool {
	switch f {
	case IPv4:
		return a.Is4()
	case IPv6:
		return !a.Is4()
	}
	return true
}

// Pool is a pool's name and range.
type Pool struct {
	Name string       `json:"name"`
	CIDR netip.Prefix `json:"cidr"`
}

// Address is an address in use, with who holds it.
type Address struct {
	Address   netip.Addr `json:"address"`
	Pool      string     `json:"pool"`
	Namespace string     `json:"namespace"`
	Pod       string     `json:"pod"`
}

// PoolsFromIndex returns the pools of the index admission decides on (either
// mode's IPPools, through pools/source); one without a range (its CIDR did
// not parse) has nothing to export and is left out.
func PoolsFromIndex(ix *policy.Index) []Pool {
	all := ix.All()
	out := make([]Pool, 0, len(all))
	for _, p := range all {
		if p.CIDR.IsValid() {
			out = append(out, Pool{Name: p.Name, CIDR: p.CIDR})
		}
	}
	return out
}

// AddressesFromClaims returns the addresses the claims hold. A claim with
// a deletionTimestamp has already been released (a finalizer may keep it a
// moment while its history is recorded): its addresses are not in use and
// are left out, as are addresses that do not parse.
func AddressesFromClaims(claims []kubestorev1alpha1.IPAMClaim) []Address {
	out := make([]Address, 0, len(claims))
	for i := range claims {
		out = AppendClaim(out, &claims[i])
	}
	return out
}

// AppendClaim appends the addresses one claim holds (none when it is being
// deleted) to out.
func AppendClaim(out []Address, c *kubestorev1alpha1.IPAMClaim) []Address {
	if c.DeletionTimestamp != nil {
		return out
	}
	for _, a := range c.Spec.Addresses {
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		out = append(out, Address{Address: ip.Unmap(), Pool: a.Pool, Namespace: c.Spec.Pod.Namespace, Pod: c.Spec.Pod.Name})
	}
	return out
}

// addrKey orders an address without pointers, so that sorting thousands
// moves 32 bytes each and no write barrier: IPv4 before IPv6, then by
// value, then by position in the input (stable, so the first holder of a
// repeated address wins).
type addrKey struct {
	v6     bool
	hi, lo uint64
	i      int32
}

func keyOf(a netip.Addr, i int) addrKey {
	b := a.As16()
	return addrKey{v6: !a.Is4(), hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), i: int32(i)}
}

func (k addrKey) sameAddress(o addrKey) bool { return k.v6 == o.v6 && k.hi == o.hi && k.lo == o.lo }

func compareKeys(a, b addrKey) int {
	switch {
	case a.v6 != b.v6:
		if a.v6 {
			return 1
		}
		return -1
	case a.hi != b.hi:
		return cmp.Compare(a.hi, b.hi)
	case a.lo != b.lo:
		return cmp.Compare(a.lo, b.lo)
	}
	return cmp.Compare(a.i, b.i)
}

// sortedAddresses returns the addresses of addrs at keys, sorted, each
// address once.
func sortedAddresses(addrs []Address, keys []addrKey) []Address {
	slices.SortFunc(keys, compareKeys)
	out := make([]Address, 0, len(keys))
	for j, k := range keys {
		if j > 0 && k.sameAddress(keys[j-1]) {
			continue
		}
		out = append(out, addrs[k.i])
	}
	return out
}

// sortPools sorts by range, then name.
func sortPools(ps []Pool) {
	slices.SortFunc(ps, func(a, b Pool) int {
		if c := a.CIDR.Addr().Compare(b.CIDR.Addr()); c != 0 {
			return c
		}
		if c := a.CIDR.Bits() - b.CIDR.Bits(); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}
