package webhook

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/source"
)

var ippoolGK = v1alpha1.GroupVersion.WithKind("IPPool").GroupKind()

// IPPoolDefaulter fills in an IPPool's defaults: the block size of its
// family and the Automatic assignment mode.
type IPPoolDefaulter struct{}

var _ admission.Defaulter[*v1alpha1.IPPool] = IPPoolDefaulter{}

// Default normalises the CIDR's spelling and sets the defaults.
//
// A CIDR it cannot normalise is refused here, with policy's message ("did
// you mean 198.51.100.0/24?"): the API server runs the CRD's CEL rules
// after the mutating webhooks and before the validating ones, and a CEL
// message cannot compute the suggestion within its cost budget, so this is
// the one place left where the person still gets it.
func (IPPoolDefaulter) Default(ctx context.Context, p *v1alpha1.IPPool) error {
	if p.Spec.AssignmentMode == "" {
		p.Spec.AssignmentMode = v1alpha1.AssignmentAutomatic
	}
	cidr, err := policy.ParsePoolCIDR(p.Spec.CIDR)
	if err != nil {
		req, _ := admission.RequestFromContext(ctx)
		record(ctx, "ippools", string(req.Operation), outcomeDenied, policy.Reason(err))
		return apierrors.NewInvalid(ippoolGK, p.Name, fieldErrors([]error{&policy.PoolError{Field: policy.FieldCIDR, Value: p.Spec.CIDR, Err: err}}))
	}
	// One spelling per range ("2001:DB8:0::/48" is stored as
	// "2001:db8::/48"), so that people, firewall exports and CIDR
	// references in pod annotations all read the same string.
	p.Spec.CIDR = cidr.String()
	if p.Spec.BlockSize == 0 {
		p.Spec.BlockSize = int32(policy.DefaultBlockSize(policy.FamilyOf(cidr)))
	}
	return nil
}

// IPPoolValidator checks IPPools: a canonical CIDR overlapping no other
// pool, a sane block size, valid selectors; no change of CIDR or block size
// while addresses are allocated; and it explains a held deletion. IPPools are
// always enforced, even in warn mode: they are poolguard's own objects.
type IPPoolValidator struct {
	Pools source.Source
}

var _ admission.Validator[*v1alpha1.IPPool] = IPPoolValidator{}

// ValidateCreate checks a new pool.
func (v IPPoolValidator) ValidateCreate(ctx context.Context, p *v1alpha1.IPPool) (admission.Warnings, error) {
	return v.check(ctx, nil, p)
}

// ValidateUpdate checks a changed pool.
func (v IPPoolValidator) ValidateUpdate(ctx context.Context, oldP, newP *v1alpha1.IPPool) (admission.Warnings, error) {
	return v.check(ctx, oldP, newP)
}

// ValidateDelete allows the delete and, when the pool is in use, warns that
// the finalizer holds it until its addresses are released.
func (v IPPoolValidator) ValidateDelete(ctx context.Context, p *v1alpha1.IPPool) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	if !inUse(p) {
		record(ctx, "ippools", string(req.Operation), outcomeAllowed, "ok")
		return nil, nil
	}
	record(ctx, "ippools", string(req.Operation), outcomeAllowed, "deletion_held")
	return admission.Warnings{fmt.Sprintf(
		"IPPool %q still has %d allocated addresses: its deletion is held by finalizer %s until the pods using them are gone; it hands out no new addresses meanwhile",
		p.Name, p.Status.Allocated, v1alpha1.FinalizerAllocations)}, nil
}

// inUse reports whether addresses are allocated from the pool.
func inUse(p *v1alpha1.IPPool) bool {
	return p.Status.Allocated > 0 || controllerutil.ContainsFinalizer(p, v1alpha1.FinalizerAllocations)
}

func (v IPPoolValidator) check(ctx context.Context, oldP, p *v1alpha1.IPPool) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	op := string(req.Operation)
	spec := poolSpec(p)
	var old *policy.PoolSpec
	oldInUse := false
	if oldP != nil {
		o := poolSpec(oldP)
		old, oldInUse = &o, inUse(oldP)
	}
	// The other pools matter only for a new CIDR: skip the snapshot (and
	// its failure modes) for every other change.
	var others []policy.Pool
	if old == nil || old.CIDR != spec.CIDR {
		index, err := v.Pools.Snapshot(ctx)
		if err != nil {
			record(ctx, "ippools", op, outcomeError, "pool_lookup")
			return nil, apierrors.NewServiceUnavailable(err.Error())
		}
		others = index.All()
	}
	warns := admission.Warnings(policy.IPPoolWarnings(spec, old, inUse(p), p.Status.Allocated))
	if errs := policy.CheckIPPool(spec, old, oldInUse, others); len(errs) > 0 {
		record(ctx, "ippools", op, outcomeDenied, reasonOf(errs))
		return warns, apierrors.NewInvalid(ippoolGK, p.Name, fieldErrors(errs))
	}
	record(ctx, "ippools", op, outcomeAllowed, "ok")
	return warns, nil
}

// poolSpec is the IPPool as policy.CheckIPPool reads it.
func poolSpec(p *v1alpha1.IPPool) policy.PoolSpec {
	return policy.PoolSpec{
		Name:              p.Name,
		CIDR:              p.Spec.CIDR,
		BlockSize:         int(p.Spec.BlockSize),
		Disabled:          p.Spec.Disabled,
		NamespaceSelector: p.Spec.NamespaceSelector,
		NodeSelector:      p.Spec.NodeSelector,
	}
}

// fieldErrors maps the policy's violations to field errors under spec: a
// change refused because the pool is in use is Forbidden (the value is
// fine, the moment is not), everything else Invalid.
func fieldErrors(errs []error) field.ErrorList {
	out := make(field.ErrorList, 0, len(errs))
	for _, err := range errs {
		path, value := field.NewPath("spec"), any(nil)
		var pe *policy.PoolError
		if errors.As(err, &pe) {
			path, value = path.Child(pe.Field), pe.Value
		}
		if errors.Is(err, policy.ErrPoolInUse) {
			out = append(out, field.Forbidden(path, err.Error()))
			continue
		}
		out = append(out, field.Invalid(path, value, err.Error()))
	}
	return out
}

// reasonOf is the metric reason of a denial: pool_in_use when any change
// was refused because the pool is in use (the one a person must act on
// differently), else the first violation's.
func reasonOf(errs []error) string {
	for _, err := range errs {
		if errors.Is(err, policy.ErrPoolInUse) {
			return policy.Reason(policy.ErrPoolInUse)
		}
	}
	return policy.Reason(errs[0])
}
