package poolctl

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestAPIError: API errors, wrapped or not, become the plugin's sentinels
// with what to do.
func TestAPIError(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		err    error
		want   error
		advice string
	}{
		{apierrors.NewForbidden(pods, "", errors.New("no")), ErrForbidden, "--clusterrole=poolguard-viewer"},
		{apierrors.NewUnauthorized("expired"), ErrUnauthorized, "log in again"},
		{errors.Join(errors.New("listing IPPools"), &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "ipam.poolguard.dev", Kind: "IPPool"}}), ErrNotInstalled, "is poolguard installed?"},
		{apierrors.NewNotFound(pods, "x"), ErrNotFound, `"x" not found`},
	} {
		got := apiError("do it", tc.err)
		if !errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.advice) || ExitCode(got) != ExitError {
			t.Errorf("apiError(%v) = %v, want %v saying %q", tc.err, got, tc.want, tc.advice)
		}
	}
	if apiError("do it", nil) != nil {
		t.Error("apiError(nil) is not nil")
	}
}
