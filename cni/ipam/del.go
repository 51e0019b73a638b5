package ipam

import (
	"errors"
	"io/fs"

	"github.com/containernetworking/cni/pkg/skel"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Del releases the attachment's addresses. It succeeds when there is
// nothing to release; it fails (try again later) only when the API server
// cannot be reached, so the runtime retries rather than leaks.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	err := p.del(args)
	if err != nil && credentialGone(err) {
		// DEL is best effort, and a runtime cannot finish deleting a pod
		// whose DEL fails: with the plugin's credential refused or its
		// kubeconfig gone (poolguard uninstalled, the node deleted,
		// RBAC removed) no retry can succeed. The claim stays, for the
		// cluster-side garbage collector to free once the pod is gone.
		p.log().Warn("DEL could not reach the allocator's state with the plugin's credential; the addresses stay claimed until poolguard's garbage collector frees them",
			"container", args.ContainerID, "ifname", args.IfName, "error", err)
		return nil
	}
	if err != nil {
		p.log().Error("DEL failed", "container", args.ContainerID, "ifname", args.IfName, "error", err)
	}
	return cniError(err)
}

func (p *Plugin) del(args *skel.CmdArgs) error {
	s, ctx, cancel, err := p.open(args)
	if err != nil {
		return err
	}
	defer cancel()
	return s.alloc.Release(ctx, s.cfg.Net.Name, args.ContainerID, args.IfName)
}

// credentialGone reports whether err says the plugin's credential is
// refused (401, 403) or its kubeconfig is missing: no retry fixes those.
// An unreachable API server is not one: it comes back, and the runtime's
// retried DEL then frees the addresses at once.
func credentialGone(err error) bool {
	return apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) || errors.Is(err, fs.ErrNotExist)
}
