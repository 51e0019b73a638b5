package webhook

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools"
	"poolguard.dev/poolguard/pools/source"
)

var ippoolGK = v1alpha1.GroupVersion.WithKind("IPPool").GroupKind()

// IPPoolDefaulter fills in an IPPool's defaults: the block size of its
// family and the Automatic assignment mode.
type IPPoolDefaulter struct{}

var _ admission.Defaulter[*v1alpha1.IPPool] = IPPoolDefaulter{}

// Default normalises the CIDR's spelling and sets the defaults. A CIDR that
// does not parse is left for the validator to refuse with a clear message.
func (IPPoolDefaulter) Default(_ context.Context, p *v1alpha1.IPPool) error {
	if p.Spec.AssignmentMode == "" {
		p.Spec.AssignmentMode = v1alpha1.AssignmentAutomatic
	}
	if cidr, err := policy.ParsePoolCIDR(p.Spec.CIDR); err == nil {
		// One spelling per range ("2001:DB8:0::/48" is stored as
		// "2001:db8::/48"), so that people, firewall exports and CIDR
		// references in pod annotations all read the same string.
		p.Spec.CIDR = cidr.String()
		if p.Spec.BlockSize == 0 {
			p.Spec.BlockSize = int32(policy.DefaultBlockSize(policy.FamilyOf(cidr)))
		}
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
		record("ippools", string(req.Operation), outcomeAllowed, "ok")
		return nil, nil
	}
	record("ippools", string(req.Operation), outcomeAllowed, "deletion_held")
	return admission.Warnings{fmt.Sprintf(
		"IPPool %q still has %d allocated addresses: its deletion is held by finalizer %s until the pods using them are gone; it hands out no new addresses meanwhile",
		p.Name, p.Status.Allocated, policy.FinalizerAllocations)}, nil
}

// inUse reports whether addresses are allocated from the pool.
func inUse(p *v1alpha1.IPPool) bool {
	return p.Status.Allocated > 0 || controllerutil.ContainsFinalizer(p, policy.FinalizerAllocations)
}

func (v IPPoolValidator) check(ctx context.Context, oldP, p *v1alpha1.IPPool) (admission.Warnings, error) {
	req, _ := admission.RequestFromContext(ctx)
	op := string(req.Operation)
	errs := validateIPPool(oldP, p)
	var warns admission.Warnings
	if len(errs) == 0 && (oldP == nil || oldP.Spec.CIDR != p.Spec.CIDR) {
		cidr, _ := policy.ParsePoolCIDR(p.Spec.CIDR)
		index, err := v.Pools.Snapshot(ctx)
		if err != nil {
			record("ippools", op, outcomeError, "pool_lookup")
			return nil, apierrors.NewServiceUnavailable(err.Error())
		}
		if other, ok := policy.FindOverlap(p.Name, cidr, index.All()); ok {
			errs = append(errs, field.Invalid(field.NewPath("spec", "cidr"), p.Spec.CIDR,
				fmt.Sprintf("%v: %s overlaps IPPool %q (%s); an address must belong to exactly one pool", policy.ErrOverlap, cidr, other.Name, other.CIDR)))
		}
	}
	if oldP != nil && !oldP.Spec.Disabled && p.Spec.Disabled && inUse(p) {
		warns = append(warns, fmt.Sprintf("IPPool %q is now disabled: its %d allocated addresses stay, new pods naming it are refused", p.Name, p.Status.Allocated))
	}
	if len(errs) > 0 {
		record("ippools", op, outcomeDenied, reasonOf(errs))
		return warns, apierrors.NewInvalid(ippoolGK, p.Name, errs)
	}
	record("ippools", op, outcomeAllowed, "ok")
	return warns, nil
}

// validateIPPool checks what can be checked without other pools.
func validateIPPool(oldP, p *v1alpha1.IPPool) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	cidr, err := policy.ParsePoolCIDR(p.Spec.CIDR)
	if err != nil {
		errs = append(errs, field.Invalid(spec.Child("cidr"), p.Spec.CIDR, err.Error()))
	} else if err := policy.CheckBlockSize(policy.FamilyOf(cidr), int(p.Spec.BlockSize)); err != nil {
		errs = append(errs, field.Invalid(spec.Child("blockSize"), p.Spec.BlockSize, err.Error()))
	}
	if err == nil {
		if _, err := pools.FromIPPool(p); err != nil {
			errs = append(errs, field.Invalid(spec, "selector", err.Error()))
		}
	}
	if oldP != nil && inUse(oldP) {
		msg := fmt.Sprintf("%v: IPPool %q has allocated addresses; create a new pool instead, move the workloads, then delete this one", policy.ErrPoolInUse, p.Name)
		if oldCIDR, _ := policy.ParsePoolCIDR(oldP.Spec.CIDR); err != nil || oldCIDR != cidr {
			errs = append(errs, field.Forbidden(spec.Child("cidr"), msg))
		}
		if oldP.Spec.BlockSize != p.Spec.BlockSize {
			errs = append(errs, field.Forbidden(spec.Child("blockSize"), msg))
		}
	}
	return errs
}

// reasonOf maps field errors to a metric reason.
func reasonOf(errs field.ErrorList) string {
	for _, e := range errs {
		if e.Type == field.ErrorTypeForbidden {
			return policy.Reason(policy.ErrPoolInUse)
		}
	}
	return policy.Reason(policy.ErrInvalidPool)
}
