package policy

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PoolSpec is what CheckIPPool decides on: an IPPool's spec in plain
// values, after defaulting, independent of the API type (or mode) it came
// from.
type PoolSpec struct {
	// Name is the pool's object name.
	Name string
	// CIDR is the range as written.
	CIDR string
	// BlockSize is the prefix length of the allocator's blocks.
	BlockSize int
	// Disabled pools hand out no new addresses.
	Disabled bool
	// NamespaceSelector and NodeSelector as written; nil selects everything.
	NamespaceSelector *metav1.LabelSelector
	NodeSelector      *metav1.LabelSelector
}

// Spec field names a PoolError can be about, as they are spelled in the
// IPPool's spec.
const (
	FieldCIDR              = "cidr"
	FieldBlockSize         = "blockSize"
	FieldNamespaceSelector = "namespaceSelector"
	FieldNodeSelector      = "nodeSelector"
)

// PoolError is one violation of an IPPool spec: the spec field it is about,
// the value found there, and why. It wraps ErrInvalidPool, ErrOverlap or
// ErrPoolInUse, so that callers map it (to a field error, a metric reason)
// with errors.Is and errors.As.
type PoolError struct {
	// Field is one of the Field* names.
	Field string
	// Value is the offending value, for the field error's "Invalid value".
	Value any
	// Err is the detailed, sentinel-wrapping cause.
	Err error
}

func (e *PoolError) Error() string { return e.Err.Error() }
func (e *PoolError) Unwrap() error { return e.Err }

// CheckIPPool decides whether an IPPool may be created (old == nil) or
// changed from old to p: a canonical CIDR of one family, a block size within
// its family's bounds, valid selectors, no change of CIDR or block size
// while the pool is in use (inUse: it has allocations or the allocations
// finalizer), and, when the CIDR is new, no overlap with any of others
// (pools of other names; a caller may pass nil when the CIDR is unchanged).
// It returns one *PoolError per violation, in spec field order; none means
// allowed.
func CheckIPPool(p PoolSpec, old *PoolSpec, inUse bool, others []Pool) []error {
	var errs []error
	bad := func(field string, value any, err error) {
		errs = append(errs, &PoolError{Field: field, Value: value, Err: err})
	}
	cidr, cidrErr := ParsePoolCIDR(p.CIDR)
	if cidrErr != nil {
		bad(FieldCIDR, p.CIDR, cidrErr)
	} else if err := CheckBlockSize(FamilyOf(cidr), p.BlockSize); err != nil {
		bad(FieldBlockSize, p.BlockSize, err)
	}
	for _, s := range []struct {
		field string
		sel   *metav1.LabelSelector
	}{{FieldNamespaceSelector, p.NamespaceSelector}, {FieldNodeSelector, p.NodeSelector}} {
		if s.sel == nil {
			continue
		}
		if _, err := metav1.LabelSelectorAsSelector(s.sel); err != nil {
			bad(s.field, "selector", fmt.Errorf("%w: %s: %v", ErrInvalidPool, s.field, err))
		}
	}
	if old != nil && inUse {
		// The allocator's blocks and claims are cut from the CIDR by the
		// block size: changing either under live allocations would strand
		// them.
		inUseErr := fmt.Errorf("%w: IPPool %q has allocated addresses; create a new pool instead, move the workloads, then delete this one", ErrPoolInUse, p.Name)
		if oldCIDR, err := ParsePoolCIDR(old.CIDR); cidrErr != nil || err != nil || oldCIDR != cidr {
			bad(FieldCIDR, p.CIDR, inUseErr)
		}
		// 0 is the family's default: a pool created without the
		// mutating webhook (the chart's pre-install hook) and defaulted
		// later has not changed its blocks.
		if cidrErr == nil && effectiveBlockSize(FamilyOf(cidr), old.BlockSize) != effectiveBlockSize(FamilyOf(cidr), p.BlockSize) {
			bad(FieldBlockSize, p.BlockSize, inUseErr)
		}
	}
	if len(errs) == 0 && (old == nil || old.CIDR != p.CIDR) {
		if other, ok := FindOverlap(p.Name, cidr, others); ok {
			bad(FieldCIDR, p.CIDR, fmt.Errorf("%w: %s overlaps IPPool %q (%s); an address must belong to exactly one pool", ErrOverlap, cidr, other.Name, other.CIDR))
		}
	}
	return errs
}

// IPPoolWarnings returns what a person changing an IPPool from old to p
// should hear though the change is allowed: disabling a pool in use keeps
// its allocated addresses (allocated of them) but refuses new pods naming it.
func IPPoolWarnings(p PoolSpec, old *PoolSpec, inUse bool, allocated int64) []string {
	if old != nil && !old.Disabled && p.Disabled && inUse {
		return []string{fmt.Sprintf("IPPool %q is now disabled: its %d allocated addresses stay, new pods naming it are refused", p.Name, allocated)}
	}
	return nil
}

// effectiveBlockSize is the block size the allocator uses: 0 is the
// family's default.
func effectiveBlockSize(f Family, size int) int {
	if size == 0 {
		return DefaultBlockSize(f)
	}
	return size
}
