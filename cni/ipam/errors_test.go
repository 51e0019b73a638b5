package ipam

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"poolguard.dev/poolguard/allocator"
)

// TestCredentialRefusals: the API server refusing the plugin's credential
// is reported as that, not as an internal error: a 403 (RBAC, or the node
// policy) with its own code and the API server's reason, a 401 (a token
// the installer has not rewritten yet) as try again later.
func TestCredentialRefusals(t *testing.T) {
	gr := schema.GroupResource{Group: "ipam.poolguard.dev", Resource: "ipamclaims"}
	forbidden := apierrors.NewForbidden(gr, "c-1", fmt.Errorf("the CNI plugin of node 'node-b' may not write the ipamclaims object c-1 of node 'node-a'"))
	for _, tc := range []struct {
		name string
		err  error
		code uint
		msg  string
	}{
		{"403 from the node policy", fmt.Errorf("IPAMClaim c-1: %w: %w", allocator.ErrRefused, forbidden), CodeCredentialRefused, "of node 'node-a'"},
		{"403 reading the pod", kubeErr(apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", fmt.Errorf("RBAC")), "reading pod default/p"), CodeCredentialRefused, "reading pod default/p"},
		{"401, expired token", kubeErr(apierrors.NewUnauthorized("token expired"), "reading pod default/p"), types.ErrTryAgainLater, "credential refused"},
		{"unreachable is not a refusal", kubeErr(fmt.Errorf("dial tcp: connection refused"), "reading pod default/p"), types.ErrTryAgainLater, "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var te *types.Error
			if !errors.As(cniError(tc.err), &te) || te.Code != tc.code {
				t.Fatalf("code %v, want %d (%v)", te, tc.code, tc.err)
			}
			if !strings.Contains(te.Details, tc.msg) {
				t.Errorf("details %q do not say %q", te.Details, tc.msg)
			}
			if tc.code == CodeCredentialRefused && !strings.Contains(te.Msg, "refused the plugin's credential") {
				t.Errorf("message %q does not name the credential", te.Msg)
			}
		})
	}
}
