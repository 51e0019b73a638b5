package ipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// Plugin implements the CNI verbs. Its zero value logs to stderr.
type Plugin struct {
	// Log receives the plugin's logs; stdout is only for the result.
	Log *slog.Logger
	// Stdout receives the result; nil means os.Stdout.
	Stdout io.Writer
}

// Funcs returns the verbs for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status}
}

func (p *Plugin) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// session is what every verb sets up: the configuration, a client and the
// allocator, under the configured timeout.
type session struct {
	cfg   *Config
	store kubestore.Store // the API server itself
	cache *blockCache     // store, with the node-local copies
	alloc *allocator.Allocator
}

func (p *Plugin) open(args *skel.CmdArgs) (*session, context.Context, context.CancelFunc, error) {
	cfg, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, nil, nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: ipam.kubeconfig %s: %w", ErrBadConfig, cfg.Kubeconfig, err)
	}
	rc.Timeout = cfg.Timeout
	rc.UserAgent = "poolguard-ipam"
	rc.QPS = -1 // no client-side rate limit: a handful of requests per process
	c, err := kubestore.NewClient(rc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: client: %w", ErrBadConfig, err)
	}
	st := kubestore.Store{Client: c}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	cached := newBlockCache(st, filepath.Join(cfg.LockDir, cfg.Node))
	alloc := &allocator.Allocator{Store: cached, Node: cfg.Node, Serialize: nodeLock(cfg.LockDir, cfg.Node, lockHolder(args), p.log().Warn)}
	return &session{cfg: cfg, store: st, cache: cached, alloc: alloc}, ctx, cancel, nil
}

// credentialGone reports whether err says the plugin's credential is
// refused (401, 403) or its kubeconfig is missing: no retry fixes those.
// An unreachable API server is not one: it comes back, and the runtime's
// retried DEL then frees the addresses at once.
func credentialGone(err error) bool {
	return apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) || errors.Is(err, fs.ErrNotExist)
}

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

// assign chooses the pools for the pod and allocates.
func (p *Plugin) assign(ctx context.Context, s *session, f facts, req allocator.Request) (*allocator.Claim, error) {
	wants, err := allocator.Choose(f.pod, f.pools, s.cfg.FailSafe)
	if err != nil {
		// The pools came from the watch cache; before refusing the pod,
		// make sure a pool just created or changed is seen.
		if f.pools, err = s.store.Pools(ctx, false); err != nil {
			return nil, err
		}
		if wants, err = allocator.Choose(f.pod, f.pools, s.cfg.FailSafe); err != nil {
			return nil, err
		}
	}
	req.Wants = wants
	return s.alloc.Assign(ctx, req)
}

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

// Status reports whether the plugin can serve ADDs: its configuration is
// valid and the API server answers.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	s, ctx, cancel, err := p.open(args)
	if err != nil {
		return cniError(err)
	}
	defer cancel()
	if _, err := s.store.Pools(ctx, true); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "poolguard-ipam: API server unavailable", err.Error())
	}
	return nil
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

// lockHolder says who this plugin process is, for the node lock's ticket:
// another process that gives up waiting names it.
func lockHolder(args *skel.CmdArgs) string {
	id := args.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	return fmt.Sprintf("poolguard-ipam pid %d for container %s (%s)", os.Getpid(), id, args.Args)
}
