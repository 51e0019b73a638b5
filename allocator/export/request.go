package export

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kind is what a list holds.
type Kind string

// The kinds of list.
const (
	// KindCIDRs: the CIDRs of every pool, or of one (Request.Pool).
	KindCIDRs Kind = "cidrs"
	// KindPool: the addresses in use in one pool.
	KindPool Kind = "pool"
	// KindNamespace: the addresses of one namespace's pods, optionally
	// only those in one pool (Request.Pool).
	KindNamespace Kind = "namespace"
)

// Format is how a list is written.
type Format string

// The formats.
const (
	// FormatText is one address or CIDR per line, sorted: the external
	// list format (PAN-OS External Dynamic Lists, FortiGate external
	// connectors).
	FormatText Format = "text"
	// FormatNFT is an `nft -f` script that replaces a set (one per family)
	// in one transaction.
	FormatNFT Format = "nft"
	// FormatJSON is the list with who holds each address.
	FormatJSON Format = "json"
)

// Formats lists the formats, the default first.
var Formats = []Format{FormatText, FormatNFT, FormatJSON}

// NFT names what an nft script writes. Each name lands in the script, so
// every one is checked (CheckNFTName) before it is used.
type NFT struct {
	// TableFamily is the table's family: inet (default), ip or ip6.
	TableFamily string `json:"tableFamily"`
	// Table is the table's name (default DefaultTable).
	Table string `json:"table"`
	// Set is the base of the sets' names: the IPv4 set is Set+"_v4", the
	// IPv6 set Set+"_v6". Empty: derived from the request (DefaultSet).
	Set string `json:"set"`
}

// DefaultTable is the nft table the scripts write into unless told.
const DefaultTable = "poolguard"

// TableFamilies are the nft table families a script may name: those whose
// rules can match addresses of ipv4_addr or ipv6_addr sets.
var TableFamilies = []string{"inet", "ip", "ip6"}

// nftName is what a table or set name may be: a letter, then letters,
// digits and underscores, at most 63 in all. Nothing of nft's syntax
// (spaces, braces, semicolons, quotes, newlines, #) can get through.
// nft's own keywords (set, table, ip ...) pass this check and are
// refused by nft when it loads the script, which then changes nothing.
var nftName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)

// CheckNFTName refuses a table or set name that is not nftName.
func CheckNFTName(what, name string) error {
	if !nftName.MatchString(name) {
		return fmt.Errorf("%w: %s %q: want a letter, then letters, digits or underscores, at most 63 characters", ErrInvalid, what, excerpt(name))
	}
	return nil
}

// Request is one list asked for.
type Request struct {
	Kind Kind `json:"kind"`
	// Pool is the pool of KindPool; for KindCIDRs and KindNamespace,
	// empty or the one pool to restrict the list to.
	Pool string `json:"pool,omitempty"`
	// Namespace is the namespace of KindNamespace.
	Namespace string `json:"namespace,omitempty"`
	// Family restricts the list to one family; AnyFamily: both.
	Family Family `json:"-"`
	Format Format `json:"-"`
	NFT    NFT    `json:"-"`
}

// Query parameter names.
const (
	ParamFormat      = "format"
	ParamFamily      = "family"
	ParamPool        = "pool"
	ParamTable       = "table"
	ParamTableFamily = "tablefamily"
	ParamSet         = "set"
)

// ParseQuery reads a request's query parameters into r, whose Kind, Pool
// and Namespace the URL's path has set: format (text, nft or json; default
// text), family (4 or 6, also ipv4, ipv6; default both), pool (namespace
// lists only: one pool's addresses of the namespace), and for the nft
// format table, tablefamily and set. A parameter that is unknown,
// repeated, empty or not valid is refused (ErrInvalid) rather than
// ignored: a typo must not silently widen a firewall's list.
func ParseQuery(r *Request, q url.Values) error {
	for k, v := range q {
		if !slices.Contains([]string{ParamFormat, ParamFamily, ParamPool, ParamTable, ParamTableFamily, ParamSet}, k) {
			return fmt.Errorf("%w: unknown query parameter %q (known: format, family, pool, table, tablefamily, set)", ErrInvalid, excerpt(k))
		}
		if len(v) != 1 {
			return fmt.Errorf("%w: query parameter %q given %d times", ErrInvalid, k, len(v))
		}
		if v[0] == "" {
			return fmt.Errorf("%w: query parameter %q is empty", ErrInvalid, k)
		}
	}
	r.Format = FormatText
	if f := q.Get(ParamFormat); f != "" {
		if !slices.Contains(Formats, Format(f)) {
			return fmt.Errorf("%w: format %q: want text, nft or json", ErrInvalid, excerpt(f))
		}
		r.Format = Format(f)
	}
	if f := q.Get(ParamFamily); f != "" {
		fam, err := ParseFamily(f)
		if err != nil {
			return err
		}
		r.Family = fam
	}
	if p := q.Get(ParamPool); p != "" {
		if r.Kind != KindNamespace {
			return fmt.Errorf("%w: the pool parameter narrows a namespace's list; for a pool's list use /v1/pools/NAME/addresses", ErrInvalid)
		}
		r.Pool = p
	}
	for _, k := range []string{ParamTable, ParamTableFamily, ParamSet} {
		if q.Has(k) && r.Format != FormatNFT {
			return fmt.Errorf("%w: query parameter %q is for format=nft", ErrInvalid, k)
		}
	}
	r.NFT = NFT{TableFamily: q.Get(ParamTableFamily), Table: q.Get(ParamTable), Set: q.Get(ParamSet)}
	return r.Validate()
}

// ParseFamily parses a family filter: 4, 6, ipv4, ipv6 (any case).
func ParseFamily(s string) (Family, error) {
	switch strings.ToLower(s) {
	case "4", "ipv4", "v4":
		return IPv4, nil
	case "6", "ipv6", "v6":
		return IPv6, nil
	}
	return AnyFamily, fmt.Errorf("%w: family %q: want 4 or 6 (or omit it for both)", ErrInvalid, excerpt(s))
}

// Validate checks a request, fills in the nft defaults (table family inet,
// table DefaultTable, the set's base name from DefaultSet) and, for an
// nft table of family ip or ip6, the family filter it implies.
func (r *Request) Validate() error {
	switch r.Kind {
	case KindCIDRs:
		if r.Pool != "" {
			if err := checkPoolName(r.Pool); err != nil {
				return err
			}
		}
	case KindPool:
		if err := checkPoolName(r.Pool); err != nil {
			return err
		}
	case KindNamespace:
		if errs := validation.IsDNS1123Label(r.Namespace); len(errs) > 0 {
			return fmt.Errorf("%w: namespace %q: %s", ErrInvalid, excerpt(r.Namespace), strings.Join(errs, "; "))
		}
		if r.Pool != "" {
			if err := checkPoolName(r.Pool); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: kind %q", ErrInvalid, excerpt(string(r.Kind)))
	}
	switch r.Family {
	case AnyFamily, IPv4, IPv6:
	default:
		return fmt.Errorf("%w: family %d", ErrInvalid, int(r.Family))
	}
	if r.Format == "" {
		r.Format = FormatText
	}
	if !slices.Contains(Formats, r.Format) {
		return fmt.Errorf("%w: format %q: want text, nft or json", ErrInvalid, excerpt(string(r.Format)))
	}
	if r.Format != FormatNFT {
		return nil
	}
	n := &r.NFT
	if n.TableFamily == "" {
		n.TableFamily = "inet"
	}
	if !slices.Contains(TableFamilies, n.TableFamily) {
		return fmt.Errorf("%w: nft table family %q: want inet, ip or ip6", ErrInvalid, excerpt(n.TableFamily))
	}
	// A table of family ip sees only IPv4, ip6 only IPv6: a set of the
	// other family there is useless, so the table's family implies the
	// filter, and contradicting it is refused.
	implied := map[string]Family{"ip": IPv4, "ip6": IPv6}[n.TableFamily]
	if implied != AnyFamily {
		if r.Family != AnyFamily && r.Family != implied {
			return fmt.Errorf("%w: an nft table of family %s holds no %s set", ErrInvalid, n.TableFamily, r.Family)
		}
		r.Family = implied
	}
	if n.Table == "" {
		n.Table = DefaultTable
	}
	if err := CheckNFTName("nft table", n.Table); err != nil {
		return err
	}
	if n.Set == "" {
		n.Set = DefaultSet(r)
	}
	// The base must leave room for the "_v4"/"_v6" suffix.
	if err := CheckNFTName("nft set", n.Set+"_v4"); err != nil {
		return err
	}
	return nil
}

// DefaultSet is the base of the sets' names unless the request names it:
// "pools", "pool_NAME", "ns_NAMESPACE" or "ns_NAMESPACE_pool_NAME", with
// every character nft would not take as an underscore, cut to fit.
func DefaultSet(r *Request) string {
	var s string
	switch r.Kind {
	case KindCIDRs:
		s = "pools"
		if r.Pool != "" {
			s = "pool_" + r.Pool
		}
	case KindPool:
		s = "pool_" + r.Pool
	case KindNamespace:
		s = "ns_" + r.Namespace
		if r.Pool != "" {
			s += "_pool_" + r.Pool
		}
	}
	b := []byte(s)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	if len(b) > 60 {
		b = b[:60]
	}
	return string(b)
}

// checkPoolName refuses what cannot be an IPPool's name (a DNS subdomain).
func checkPoolName(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("%w: pool %q: %s", ErrInvalid, excerpt(name), strings.Join(errs, "; "))
	}
	return nil
}

// excerpt bounds what an error quotes of a caller's input.
func excerpt(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
