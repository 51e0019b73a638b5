package ipam

import (
	"errors"

	"github.com/containernetworking/cni/pkg/skel"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// GC releases the claims of this node and network whose attachment is not
// in cni.dev/valid-attachments. Slots without a claim (an ADD killed
// half-way) are left to the cluster's garbage collector and its grace
// period: an ADD may be writing its claim right now.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	err := p.gc(args)
	if err != nil {
		p.log().Error("GC failed", "error", err)
	}
	return cniError(err)
}

func (p *Plugin) gc(args *skel.CmdArgs) error {
	s, ctx, cancel, err := p.open(args)
	if err != nil {
		return err
	}
	defer cancel()
	valid := make(map[string]bool, len(s.cfg.Net.ValidAttachments))
	for _, a := range s.cfg.Net.ValidAttachments {
		valid[allocator.ClaimID(s.cfg.Net.Name, a.ContainerID, a.IfName)] = true
	}
	var list v1alpha1.IPAMClaimList
	if err := s.store.Client.List(ctx, kubestore.Claims, kubestore.ReadOpts{FieldSelector: "spec.node=" + s.cfg.Node}, &list); err != nil {
		return kubeErr(err, "listing the node's IPAMClaims")
	}
	var errs []error
	for i := range list.Items {
		o := &list.Items[i]
		if o.Spec.Network != s.cfg.Net.Name || valid[o.Name] {
			continue
		}
		c, err := kubestore.ClaimFromAPI(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.log().Info("GC releasing", "pod", c.Pod, "container", c.ContainerID, "addresses", addrs(c))
		if err := s.alloc.ReleaseClaim(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
