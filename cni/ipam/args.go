package ipam

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"poolguard.dev/poolguard/allocator"
)

// ErrBadArgs wraps errors in CNI_ARGS (CNI code 4).
var ErrBadArgs = errors.New("invalid CNI_ARGS")

// K8sArgs are the pod identity the runtime passes in CNI_ARGS.
type K8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_UID                types.UnmarshallableString //nolint:revive // CNI_ARGS key
}

// ParsePod reads the pod identity from CNI_ARGS. Namespace and name are
// required for ADD.
func ParsePod(args string) (allocator.PodRef, error) {
	var k K8sArgs
	if err := types.LoadArgs(args, &k); err != nil {
		return allocator.PodRef{}, fmt.Errorf("%w: %w", ErrBadArgs, err)
	}
	p := allocator.PodRef{Namespace: string(k.K8S_POD_NAMESPACE), Name: string(k.K8S_POD_NAME), UID: string(k.K8S_POD_UID)}
	if p.Namespace == "" || p.Name == "" {
		return p, fmt.Errorf("%w: K8S_POD_NAMESPACE and K8S_POD_NAME are required (is the runtime Kubernetes?)", ErrBadArgs)
	}
	if msgs := validation.IsDNS1123Label(p.Namespace); len(msgs) > 0 {
		return p, fmt.Errorf("%w: K8S_POD_NAMESPACE %q: %s", ErrBadArgs, p.Namespace, msgs[0])
	}
	if msgs := validation.IsDNS1123Subdomain(p.Name); len(msgs) > 0 {
		return p, fmt.Errorf("%w: K8S_POD_NAME %q: %s", ErrBadArgs, p.Name, msgs[0])
	}
	return p, nil
}
