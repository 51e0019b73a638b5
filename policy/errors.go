package policy

import (
	"errors"
	"fmt"
)

// Sentinel errors of the policy. Callers wrap them with detail and map them
// to admission statuses or CNI error codes only at the edge.
var (
	// ErrMalformed: the annotation is not a JSON list of unique, non-empty
	// pool names or CIDRs of a sane size.
	ErrMalformed = errors.New("malformed pool list")
	// ErrUnknownPool: a named pool does not exist.
	ErrUnknownPool = errors.New("unknown pool")
	// ErrWrongFamily: an IPv6 pool under ipv4pools or the reverse.
	ErrWrongFamily = errors.New("wrong address family")
	// ErrDisabledPool: the pool is disabled or being deleted.
	ErrDisabledPool = errors.New("pool disabled")
	// ErrForbiddenPool: the pool's namespaceSelector does not select the
	// namespace, or the pool does not serve workloads.
	ErrForbiddenPool = errors.New("pool not allowed for namespace")
	// ErrNodeNotAllowed: the pool's nodeSelector does not select the node.
	ErrNodeNotAllowed = errors.New("pool not allowed on node")
	// ErrImmutable: an update touched a frozen annotation.
	ErrImmutable = errors.New("frozen annotation changed")
	// ErrNotFrozen: a pod reached validation without a trustworthy
	// provenance annotation.
	ErrNotFrozen = errors.New("pod not frozen")
	// ErrNamespaceChanged: the pod's frozen state does not match its
	// namespace as validation reads it, and the namespace changed since
	// the mutating webhook read it (another resourceVersion): the race of
	// a pod created while its namespace's default moves. It comes with
	// ErrNotFrozen, and creating the pod again resolves it.
	ErrNamespaceChanged = errors.New("namespace changed during admission")
	// ErrInvalidPool: an IPPool's spec is invalid.
	ErrInvalidPool = errors.New("invalid pool")
	// ErrOverlap: an IPPool's CIDR overlaps another pool's.
	ErrOverlap = errors.New("pool overlaps another pool")
	// ErrPoolInUse: the change needs the pool to have no allocations.
	ErrPoolInUse = errors.New("pool in use")
	// ErrPoolChanged: a pool a pod names no longer has the range the pod
	// was admitted with (deleted and re-created, or its CIDR changed).
	ErrPoolChanged = errors.New("pool range changed since admission")
	// ErrNoPool: no pool is eligible for the pod: it names none and no
	// Automatic pool serves its namespace, or it is not frozen and no
	// unrestricted default serves its node.
	ErrNoPool = errors.New("no eligible pool")
)

// Reason returns a short, stable label for an error: the metric and event
// vocabulary. Unknown errors are "internal".
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	if err == nil {
		return "none"
	}
	return "internal"
}

var reasons = []struct {
	err    error
	reason string
}{
	{ErrMalformed, "malformed"},
	{ErrUnknownPool, "unknown_pool"},
	{ErrWrongFamily, "wrong_family"},
	{ErrDisabledPool, "disabled_pool"},
	{ErrForbiddenPool, "forbidden_pool"},
	{ErrNodeNotAllowed, "node_not_allowed"},
	{ErrImmutable, "immutable"},
	{ErrNotFrozen, "not_frozen"},
	{ErrInvalidPool, "invalid_pool"},
	{ErrOverlap, "overlap"},
	{ErrPoolInUse, "pool_in_use"},
	{ErrPoolChanged, "pool_changed"},
	{ErrNoPool, "no_pool"},
}

// detailed is an error whose message is the detail a person reads while
// errors.Is still finds the sentinel: "pool "x" does not exist" rather than
// "unknown pool: pool "x" does not exist".
type detailed struct {
	sentinel error
	msg      string
}

func (e detailed) Error() string { return e.msg }
func (e detailed) Unwrap() error { return e.sentinel }

// fail returns a detailed error wrapping sentinel.
func fail(sentinel error, format string, args ...any) error {
	return detailed{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}
