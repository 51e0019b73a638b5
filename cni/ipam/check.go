package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"poolguard.dev/poolguard/allocator"
)

// Check verifies that the attachment's claim exists, that every address of
// prevResult is in it, and that each is still held in its block with the
// claim's sequence number.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	err := p.check(args)
	if err != nil {
		p.log().Error("CHECK failed", "container", args.ContainerID, "ifname", args.IfName, "error", err)
	}
	return cniError(err)
}

func (p *Plugin) check(args *skel.CmdArgs) error {
	s, ctx, cancel, err := p.open(args)
	if err != nil {
		return err
	}
	defer cancel()
	c, err := s.alloc.Get(ctx, s.cfg.Net.Name, args.ContainerID, args.IfName)
	if errors.Is(err, allocator.ErrNotFound) {
		return fmt.Errorf("%w: no allocation recorded for container %s interface %s", allocator.ErrMismatch, args.ContainerID, args.IfName)
	}
	if err != nil {
		return err
	}
	if c.Released {
		return fmt.Errorf("%w: the allocation of container %s interface %s was released", allocator.ErrMismatch, args.ContainerID, args.IfName)
	}
	if s.cfg.Net.RawPrevResult != nil {
		if err := version.ParsePrevResult(&s.cfg.Net.PluginConf); err != nil {
			return fmt.Errorf("%w: prevResult: %v", ErrBadConfig, err)
		}
		prev, err := current.NewResultFromResult(s.cfg.Net.PrevResult)
		if err != nil {
			return fmt.Errorf("%w: prevResult: %v", ErrBadConfig, err)
		}
		for _, ip := range prev.IPs {
			a, _ := netip.AddrFromSlice(ip.Address.IP)
			a = a.Unmap()
			if !slices.ContainsFunc(c.Addresses, func(x allocator.Assigned) bool { return x.Addr == a }) {
				return fmt.Errorf("%w: prevResult has %s, but pod %s holds %v", allocator.ErrMismatch, a, c.Pod, addrs(c))
			}
		}
	}
	for _, as := range c.Addresses {
		b, err := s.store.GetBlock(ctx, as.Block)
		if err != nil && !errors.Is(err, allocator.ErrNotFound) {
			return err
		}
		if b == nil {
			return fmt.Errorf("%w: block %s of %s is gone", allocator.ErrMismatch, as.Block, as.Addr)
		}
		off, _ := b.Offset(as.Addr)
		if slot, ok := b.Slots[off]; !ok || slot.Claim != c.ID || slot.Seq != as.Seq {
			return fmt.Errorf("%w: %s is no longer held by pod %s in block %s", allocator.ErrMismatch, as.Addr, c.Pod, as.Block)
		}
	}
	return nil
}
