package ipam

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/policy"
)

// Add allocates the pod's addresses, or returns those it already holds.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	start := time.Now()
	err := p.add(args)
	if err != nil {
		p.log().Error("ADD failed", "container", args.ContainerID, "ifname", args.IfName, "args", args.Args, "error", err, "took", time.Since(start))
	} else {
		p.log().Debug("ADD", "container", args.ContainerID, "took", time.Since(start))
	}
	return cniError(err)
}

func (p *Plugin) add(args *skel.CmdArgs) error {
	t0 := time.Now()
	s, ctx, cancel, err := p.open(args)
	if err != nil {
		return err
	}
	defer cancel()
	pod, err := ParsePod(args.Args)
	if err != nil {
		return err
	}
	t1 := time.Now()
	network := s.cfg.Net.Name
	f, err := readFacts(ctx, s.cache, s.cfg, pod)
	if err != nil {
		return fmt.Errorf("pod %s: %w", pod, err)
	}
	t2 := time.Now()
	defer func() {
		p.log().Debug("ADD phases", "pod", pod.String(), "setup", t1.Sub(t0), "reads", t2.Sub(t1), "allocate", time.Since(t2))
	}()
	claim, err := p.assign(ctx, s, f, allocator.Request{
		Network: network, ContainerID: args.ContainerID, IfName: args.IfName, Pod: pod,
		SkipClaimRead: true, Affinity: f.affinity,
	})
	if err != nil {
		// A repeated ADD returns the addresses the attachment holds,
		// even if its pools would refuse it now.
		if c, gerr := s.alloc.Get(ctx, network, args.ContainerID, args.IfName); gerr == nil {
			claim, err = c, nil
		}
	}
	if err != nil {
		return err
	}
	return p.print(resultOf(claim, s.cfg.Routes), s.cfg.Net.CNIVersion)
}

// assign chooses the pools for the pod (policy.ChoosePools) and
// allocates from their ranges.
func (p *Plugin) assign(ctx context.Context, s *session, f facts, req allocator.Request) (*allocator.Claim, error) {
	choices, err := policy.ChoosePools(f.pod, f.pools.Index, s.cfg.FailSafe)
	if err != nil {
		// The pools came from the watch cache; before refusing the pod,
		// make sure a pool just created or changed is seen.
		if f.pools, err = s.store.Pools(ctx, false); err != nil {
			return nil, err
		}
		if choices, err = policy.ChoosePools(f.pod, f.pools.Index, s.cfg.FailSafe); err != nil {
			return nil, err
		}
	}
	req.Wants = f.pools.Wants(choices)
	return s.alloc.Assign(ctx, req)
}

// resultOf renders a claim as a CNI result. Each address carries its
// pool's prefix length; the configured routes follow, those of a family
// the claim has an address of (a v6 route in a pod with no v6 address
// would fail the main plugin's ADD).
func resultOf(c *allocator.Claim, routes []*types.Route) *current.Result {
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	var has4, has6 bool
	for _, as := range c.Addresses {
		bits := as.Addr.BitLen()
		has4, has6 = has4 || as.Addr.Is4(), has6 || !as.Addr.Is4()
		r.IPs = append(r.IPs, &current.IPConfig{Address: net.IPNet{
			IP:   net.IP(as.Addr.AsSlice()),
			Mask: net.CIDRMask(as.PoolCIDR.Bits(), bits),
		}})
	}
	for _, rt := range routes {
		if v4 := rt.Dst.IP.To4() != nil; v4 && has4 || !v4 && has6 {
			r.Routes = append(r.Routes, rt)
		}
	}
	return r
}

func addrs(c *allocator.Claim) []string {
	out := make([]string, len(c.Addresses))
	for i, a := range c.Addresses {
		out[i] = a.Addr.String()
	}
	return out
}

func (p *Plugin) print(r *current.Result, version string) error {
	out := io.Writer(p.Stdout)
	if out == nil {
		out = os.Stdout
	}
	res, err := r.GetAsVersion(version)
	if err != nil {
		return fmt.Errorf("%w: cniVersion %q: %v", ErrBadConfig, version, err)
	}
	return res.PrintTo(out)
}
