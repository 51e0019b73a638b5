package ipam

import (
	"errors"

	"github.com/containernetworking/cni/pkg/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/policy"
)

// ErrNodeNotRegistered: the API server has no Node of the plugin's node
// name (CNI code 7, invalid configuration). Almost always ipam.nodeName
// left to the host name where the Node is registered under another name;
// allocating anyway would record the pod's addresses under a node that
// does not exist.
var ErrNodeNotRegistered = errors.New("node not registered with the API server")

// poolguard's own CNI error codes (100 and up are plugin-specific).
const (
	// CodePoolRefused: the pod's pools cannot serve it (unknown, wrong
	// family, not allowed for its namespace or node, none eligible). Fix
	// the pool or the pod; retrying does not help.
	CodePoolRefused uint = 100
	// CodeNotFrozen: the pod lacks the provenance annotation and the
	// plugin's failSafe is "refuse". Recreate the pod with the webhook up.
	CodeNotFrozen uint = 101
	// CodeMismatch: CHECK found the allocation differs from the record.
	CodeMismatch uint = 102
	// CodeCredentialRefused: the API server refused the plugin's
	// credential for this request (403): its account's RBAC, or a node
	// writing what is not its own (the chart's node policy, whose
	// message says which node the credential is bound to). A 401 (token
	// expired or revoked) is ErrTryAgainLater instead: the installer
	// rewrites the token, and the runtime's retry then succeeds.
	CodeCredentialRefused uint = 103
)

// codeFor maps an error to its CNI code. Order matters: a joined error may
// carry several reasons, and one that retrying cannot fix wins.
func codeFor(err error) uint {
	switch {
	// A node name the API server does not know is a configuration error:
	// ipam.nodeName (or the host name it defaults to) is wrong, and no
	// retry fixes it.
	case errors.Is(err, ErrBadConfig), errors.Is(err, ErrNodeNotRegistered):
		return types.ErrInvalidNetworkConfig
	case errors.Is(err, ErrBadArgs):
		return types.ErrInvalidEnvironmentVariables
	case errors.Is(err, ErrPodGone):
		return types.ErrUnknownContainer
	case errors.Is(err, allocator.ErrRefused) && apierrors.IsUnauthorized(err):
		return types.ErrTryAgainLater
	case errors.Is(err, allocator.ErrRefused):
		return CodeCredentialRefused
	case errors.Is(err, policy.ErrNotFrozen):
		return CodeNotFrozen
	case errors.Is(err, allocator.ErrMismatch):
		return CodeMismatch
	case errors.Is(err, policy.ErrUnknownPool), errors.Is(err, policy.ErrInvalidPool), errors.Is(err, policy.ErrWrongFamily),
		errors.Is(err, policy.ErrForbiddenPool), errors.Is(err, policy.ErrNodeNotAllowed),
		errors.Is(err, policy.ErrMalformed), errors.Is(err, policy.ErrPoolChanged), errors.Is(err, policy.ErrNoPool):
		return CodePoolRefused
	// Retrying helps: addresses are freed as pods go, a disabled pool may
	// be enabled again, the API server comes back, contention passes.
	case errors.Is(err, allocator.ErrExhausted), errors.Is(err, policy.ErrDisabledPool),
		errors.Is(err, allocator.ErrUnavailable), errors.Is(err, allocator.ErrBusy), errors.Is(err, allocator.ErrReleasing):
		return types.ErrTryAgainLater
	}
	return types.ErrInternal
}

// cniError converts an error to the CNI error the runtime prints.
func cniError(err error) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	code := codeFor(err)
	return types.NewError(code, msgFor(code), err.Error())
}

func msgFor(code uint) string {
	switch code {
	case types.ErrInvalidNetworkConfig:
		return "poolguard-ipam: invalid configuration"
	case types.ErrInvalidEnvironmentVariables:
		return "poolguard-ipam: invalid CNI_ARGS"
	case types.ErrUnknownContainer:
		return "poolguard-ipam: pod not found"
	case CodeNotFrozen:
		return "poolguard-ipam: pod not frozen by poolguard"
	case CodeMismatch:
		return "poolguard-ipam: allocation does not match"
	case CodePoolRefused:
		return "poolguard-ipam: no usable pool for the pod"
	case CodeCredentialRefused:
		return "poolguard-ipam: the API server refused the plugin's credential (the token in the kubeconfig the installer DaemonSet writes)"
	case types.ErrTryAgainLater:
		return "poolguard-ipam: try again later"
	}
	return "poolguard-ipam: internal error"
}
