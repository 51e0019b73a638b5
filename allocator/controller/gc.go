package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// Defaults of the garbage collector.
const (
	// DefaultGracePeriod is how long an allocation must look like garbage
	// before it is freed. It must be at least twice the plugin's timeout
	// (30s by default; Options.Validate and the chart check it), so that
	// an ADD still writing its claim, or the runtime's retry of one that
	// timed out, is never mistaken for a crashed one.
	DefaultGracePeriod = 5 * time.Minute
	// DefaultInterval is how often the collector sweeps.
	DefaultInterval = time.Minute
)

// Collector frees what no pod needs: claims whose pod is gone, slots whose
// claim was never written (an ADD killed half-way), and empty blocks of
// deleted nodes or pools. Everything it frees it has seen as garbage for
// the grace period, re-checks against the API server right before, and
// releases with the sequence number it saw, so an address reassigned in
// the meantime is never freed.
type Collector struct {
	// Reader lists claims, blocks, affinities, pods and nodes (a cache).
	Reader client.Reader
	// Live reads from the API server for the re-check before freeing.
	Live client.Reader
	// Store writes, guarded by resourceVersion.
	Store kubestore.Store
	// GracePeriod: see DefaultGracePeriod. Zero frees at once (tests).
	GracePeriod time.Duration
	// Log receives what is freed and why.
	Log logr.Logger
	// Now is time.Now, replaceable by tests.
	Now func() time.Time

	mu       sync.Mutex
	suspects map[string]time.Time
}

// Report says what one sweep did.
type Report struct {
	ClaimsReleased, SlotsReleased, BlocksDeleted int
	// Suspects are candidates still waiting for the grace period.
	Suspects int
}

// Sweep runs one collection pass.
func (c *Collector) Sweep(ctx context.Context) (Report, error) {
	var r Report
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.suspects
	c.suspects = map[string]time.Time{}
	// due reports whether a candidate has been garbage for the grace
	// period, and keeps it as a suspect otherwise.
	due := func(key string) bool {
		first, seen := prev[key]
		if !seen {
			first = now()
		}
		if now().Sub(first) >= c.GracePeriod {
			return true
		}
		c.suspects[key] = first
		return false
	}

	var claims v1alpha1.IPAMClaimList
	var blocks v1alpha1.IPAMBlockList
	var pods, nodes metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	for _, l := range []client.ObjectList{&claims, &blocks, &pods, &nodes} {
		if err := c.Reader.List(ctx, l); err != nil {
			return r, fmt.Errorf("listing: %w", err)
		}
	}
	livePods := make(map[types.NamespacedName]int, len(pods.Items))
	for i, p := range pods.Items {
		livePods[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = i
	}
	nodeExists := make(map[string]bool, len(nodes.Items))
	for _, n := range nodes.Items {
		nodeExists[n.Name] = true
	}
	// lists holds, per claim, the slots it records ("addr/seq").
	lists := make(map[string]map[string]bool, len(claims.Items))
	var errs []error

	// Claims whose pod is gone.
	for i := range claims.Items {
		o := &claims.Items[i]
		lists[o.Name] = listedSlots(o)
		if o.DeletionTimestamp != nil {
			// Released, and waiting for the history recorder: nothing
			// of it is the collector's to free. Its slots stay listed
			// above, so one still held (a claim deleted by hand under a
			// live pod) is freed only once the claim is gone.
			continue
		}
		key := types.NamespacedName{Namespace: o.Spec.Pod.Namespace, Name: o.Spec.Pod.Name}
		if i, ok := livePods[key]; ok && policy.IsThePod(string(pods.Items[i].UID), pods.Items[i].Annotations, o.Spec.Pod.UID) {
			continue
		}
		if !due("claim/" + o.Name + "/" + string(o.UID)) {
			continue
		}
		freed, err := c.releaseClaim(ctx, o)
		if err != nil {
			errs = append(errs, err)
		} else if freed {
			// Its slots were freed with it; the block listing above is
			// older, so leave them out of the orphan search.
			r.ClaimsReleased++
		}
	}

	// Slots whose claim does not exist or does not record them, and empty
	// blocks nobody holds.
	for i := range blocks.Items {
		o := &blocks.Items[i]
		b, err := kubestore.BlockFromAPI(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for off, s := range b.Slots {
			addr := b.Addr(off)
			if lists[s.Claim][slotKey(addr, s.Seq)] {
				continue
			}
			if !due(fmt.Sprintf("slot/%s/%d/%s/%d", o.Name, off, s.Claim, s.Seq)) {
				continue
			}
			freed, err := c.releaseOrphan(ctx, b.CIDR, addr, s)
			if err != nil {
				errs = append(errs, err)
			} else if freed {
				r.SlotsReleased++
			}
		}
		if b.Node != "" && !nodeExists[b.Node] && len(o.Spec.Allocations) == 0 {
			if !due("block/" + o.Name + "/" + o.ResourceVersion) {
				continue
			}
			if err := c.deleteBlock(ctx, o.Name, b.Node, b.Pool, b.CIDR); err != nil {
				errs = append(errs, err)
			} else {
				r.BlocksDeleted++
			}
		}
	}
	r.Suspects = len(c.suspects)
	return r, errors.Join(errs...)
}

// releaseClaim re-reads the claim and its pod from the API server and
// frees the claim's addresses if the pod is still gone.
func (c *Collector) releaseClaim(ctx context.Context, seen *v1alpha1.IPAMClaim) (bool, error) {
	var o v1alpha1.IPAMClaim
	if err := c.Live.Get(ctx, types.NamespacedName{Name: seen.Name}, &o); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if o.UID != seen.UID {
		return false, nil // replaced by a new attachment with the same key
	}
	var pod metav1.PartialObjectMetadata
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	err := c.Live.Get(ctx, types.NamespacedName{Namespace: o.Spec.Pod.Namespace, Name: o.Spec.Pod.Name}, &pod)
	if err == nil && policy.IsThePod(string(pod.UID), pod.Annotations, o.Spec.Pod.UID) {
		return false, nil // the pod is back (or the cache was behind)
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	cl, err := kubestore.ClaimFromAPI(&o)
	if err != nil {
		return false, err
	}
	// The release is recorded in the block (allocator.Block.Release), at
	// the collector's clock: the addresses cool down before they are
	// handed out again, as after a DEL.
	a := &allocator.Allocator{Store: c.Store, Node: o.Spec.Node, Now: c.Now}
	if err := a.ReleaseClaim(ctx, cl); err != nil {
		return false, err
	}
	c.Log.Info("released addresses of a pod that is gone", "pod", cl.Pod.String(), "podUID", cl.Pod.UID, "node", cl.Node, "addresses", addrsOf(cl), "claim", cl.ID)
	return true, nil
}

// releaseOrphan frees a slot that no claim records, re-reading the claim
// it names first: either the claim was never written (an ADD killed
// half-way), or it records other addresses (an ADD killed after its block
// write, then retried, took a slot in another block before writing the
// claim). A claim is written after all its slots, so once it exists a slot
// it does not record is nobody's. The sequence number guards against
// reassignment.
func (c *Collector) releaseOrphan(ctx context.Context, block netip.Prefix, addr netip.Addr, s allocator.Slot) (bool, error) {
	var o v1alpha1.IPAMClaim
	err := c.Live.Get(ctx, types.NamespacedName{Name: s.Claim}, &o)
	if err == nil && listedSlots(&o)[slotKey(addr, s.Seq)] {
		return false, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	why := "its claim was never written (ADD interrupted)"
	if err == nil {
		why = "its claim records other addresses (ADD interrupted, then retried)"
	}
	a := &allocator.Allocator{Store: c.Store, Now: c.Now} // recorded, to cool down: see releaseClaim
	if freed, err := a.ReleaseSlot(ctx, block, addr, s.Claim, s.Seq); err != nil || !freed {
		return false, err
	}
	c.Log.Info("released an address no claim holds: "+why, "address", addr.String(), "block", block.String(), "claim", s.Claim, "seq", s.Seq)
	return true, nil
}

// deleteBlock deletes an empty block of a deleted node, guarded by the
// resourceVersion read live, and drops it from the node's affinity.
func (c *Collector) deleteBlock(ctx context.Context, name, node, pool string, cidr netip.Prefix) error {
	b, err := c.Store.GetBlock(ctx, cidr)
	if errors.Is(err, allocator.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(b.Slots) > 0 {
		return nil
	}
	if err := c.Store.DeleteBlock(ctx, b); err != nil && !errors.Is(err, allocator.ErrNotFound) {
		return err
	}
	c.Log.Info("deleted an empty block of a deleted node", "block", name, "node", node, "pool", pool)
	return c.dropAffinity(ctx, node, pool, cidr)
}

func (c *Collector) dropAffinity(ctx context.Context, node, pool string, cidr netip.Prefix) error {
	for try := 0; try < 10; try++ {
		aff, err := c.Store.GetAffinity(ctx, node)
		if err != nil || aff.Version == "" {
			return err
		}
		var keep []netip.Prefix
		for _, p := range aff.Blocks[pool] {
			if p != cidr {
				keep = append(keep, p)
			}
		}
		if len(keep) == len(aff.Blocks[pool]) {
			return nil
		}
		if len(keep) == 0 {
			delete(aff.Blocks, pool)
		} else {
			aff.Blocks[pool] = keep
		}
		if len(aff.Blocks) == 0 {
			err = c.Store.DeleteAffinity(ctx, aff)
		} else {
			err = c.Store.SaveAffinity(ctx, aff)
		}
		if err == nil || errors.Is(err, allocator.ErrNotFound) {
			return nil
		}
		if !errors.Is(err, allocator.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: affinity of node %s", allocator.ErrBusy, node)
}

// listedSlots returns the slots a claim records, as slotKey.
func listedSlots(o *v1alpha1.IPAMClaim) map[string]bool {
	out := make(map[string]bool, len(o.Spec.Addresses))
	for _, a := range o.Spec.Addresses {
		if addr, err := netip.ParseAddr(a.Address); err == nil {
			out[slotKey(addr, uint64(a.Seq))] = true
		}
	}
	return out
}

func slotKey(addr netip.Addr, seq uint64) string { return fmt.Sprintf("%s/%d", addr, seq) }

func addrsOf(c *allocator.Claim) []string {
	out := make([]string, len(c.Addresses))
	for i, a := range c.Addresses {
		out[i] = a.Addr.String()
	}
	return out
}
