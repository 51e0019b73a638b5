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
	"k8s.io/apimachinery/pkg/runtime/schema"
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
//
// A sweep reads the cache's own objects, without copies, and indexes them
// in sets of hashes and comparable struct keys that build no string, so
// that it costs the same per pod in a cluster of any size (BenchmarkSweep)
// and leaves next to nothing for the Go garbage collector: nothing it does
// with a cached object changes it, and what it frees it reads again live
// first.
type Collector struct {
	// Reader reads claims, blocks, pods and nodes: a cache. From an
	// informer cache (poolguard-webhook passes the manager's) the sweep
	// reads the informers' stores; any other reader it lists with
	// client.UnsafeDisableDeepCopy. Either way it only reads.
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

	suspects suspects

	// sweeping holds one sweep at a time, and guards checked.
	sweeping sync.Mutex
	// checked remembers, per block name, the resourceVersion that passed
	// kubestore.BlockFromAPI's checks in the last sweeps: an object of the
	// same resourceVersion is the same object, so a sweep reads an
	// unchanged block's allocations in place instead of converting it
	// again (a map of slots per block, per sweep).
	checked map[string]checkedBlock
}

// checkedBlock is a block's resourceVersion that passed the checks, and the
// sweep round that last saw it.
type checkedBlock struct {
	version string
	round   uint64
}

// Report says what one sweep did.
type Report struct {
	ClaimsReleased, SlotsReleased, BlocksDeleted int
	// Suspects are candidates still waiting for the grace period.
	Suspects int
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Sweep runs one collection pass.
func (c *Collector) Sweep(ctx context.Context) (Report, error) {
	var r Report
	c.sweeping.Lock()
	defer c.sweeping.Unlock()
	began := time.Now()
	round := c.suspects.begin()

	claims, blocks, pods, nodes, err := c.list(ctx)
	if err != nil {
		// The suspects stay as they are: the next sweep that lists sees
		// each again, or forgets it.
		sweepDuration.Observe(time.Since(began).Seconds())
		return r, fmt.Errorf("listing: %w", err)
	}
	seen := newSnapshot(pods, nodes, len(claims))
	var errs []error

	// Claims whose pod is gone.
	for _, o := range claims {
		// Every claim's slots, released claims' too, are recorded
		// before the blocks are searched for orphans below.
		seen.record(o)
		if o.DeletionTimestamp != nil {
			// Released, and waiting for the history recorder: nothing
			// of it is the collector's to free. Its slots are recorded
			// all the same, so one still held (a claim deleted by hand
			// under a live pod) is freed only once the claim is gone.
			continue
		}
		if seen.podAlive(o.Spec.Pod) {
			continue
		}
		if !c.suspects.due(claimCandidate(o), c.now(), c.GracePeriod) {
			continue
		}
		freed, err := c.releaseClaim(ctx, o)
		if err != nil {
			errs = append(errs, err)
		} else if freed {
			// Its slots were freed with it; the block listing is
			// older, and they are recorded above, so the orphan
			// search below leaves them alone.
			r.ClaimsReleased++
			freedTotal.WithLabelValues(kindClaim, triggerSweep).Inc()
		}
	}

	// Slots whose claim does not exist or does not record them, and empty
	// blocks nobody holds.
	slots := 0
	for _, o := range blocks {
		cidr, err := c.checkBlock(o, round)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		slots += len(o.Spec.Allocations)
		for _, a := range o.Spec.Allocations {
			addr := slotAddr(cidr, a.Slot)
			if seen.isRecorded(a.Claim, addr, a.Seq) {
				continue
			}
			if !c.suspects.due(candidate{kind: candidateSlot, name: o.Name, ref: a.Claim, slot: a.Slot, seq: a.Seq}, c.now(), c.GracePeriod) {
				continue
			}
			freed, err := c.releaseOrphan(ctx, cidr, addr, a.Claim, a.Seq)
			if err != nil {
				errs = append(errs, err)
			} else if freed {
				r.SlotsReleased++
				freedTotal.WithLabelValues(kindSlot, triggerSweep).Inc()
			}
		}
		if node := o.Spec.Node; node != "" && !seen.nodeExists(node) && len(o.Spec.Allocations) == 0 {
			if !c.suspects.due(candidate{kind: candidateBlock, name: o.Name, ref: o.ResourceVersion}, c.now(), c.GracePeriod) {
				continue
			}
			if err := c.deleteBlock(ctx, o.Name, node, o.Spec.Pool, cidr); err != nil {
				errs = append(errs, err)
			} else {
				r.BlocksDeleted++
				freedTotal.WithLabelValues(kindBlock, triggerSweep).Inc()
			}
		}
	}
	for name, cb := range c.checked {
		if cb.round != round {
			delete(c.checked, name) // deleted since
		}
	}
	r.Suspects = c.suspects.end(round)
	observeSweep(time.Since(began), len(claims), len(blocks), slots, len(pods), len(nodes), r.Suspects)
	return r, errors.Join(errs...)
}

// list reads the claims, blocks, pods and nodes from the cache, without
// copies (cachedObjects): read only.
func (c *Collector) list(ctx context.Context) (claims []*v1alpha1.IPAMClaim, blocks []*v1alpha1.IPAMBlock, pods, nodes []*metav1.PartialObjectMetadata, err error) {
	if claims, err = cachedObjects(ctx, c.Reader, &v1alpha1.IPAMClaim{}, &v1alpha1.IPAMClaimList{}); err != nil {
		return
	}
	if blocks, err = cachedObjects(ctx, c.Reader, &v1alpha1.IPAMBlock{}, &v1alpha1.IPAMBlockList{}); err != nil {
		return
	}
	if pods, err = cachedObjects(ctx, c.Reader, metadataObject(podGVK), metadataList(podListGVK)); err != nil {
		return
	}
	nodes, err = cachedObjects(ctx, c.Reader, metadataObject(nodeGVK), metadataList(nodeListGVK))
	return
}

// checkBlock returns the block's CIDR once the block passes
// kubestore.BlockFromAPI's checks, which it runs only on a block it has not
// checked at this resourceVersion.
func (c *Collector) checkBlock(o *v1alpha1.IPAMBlock, round uint64) (netip.Prefix, error) {
	if cb, ok := c.checked[o.Name]; ok && cb.version == o.ResourceVersion && cb.version != "" {
		if cidr, err := netip.ParsePrefix(o.Spec.CIDR); err == nil {
			c.checked[o.Name] = checkedBlock{version: cb.version, round: round}
			return cidr, nil
		}
	}
	b, err := kubestore.BlockFromAPI(o)
	if err != nil {
		delete(c.checked, o.Name)
		return netip.Prefix{}, err
	}
	if c.checked == nil {
		c.checked = map[string]checkedBlock{}
	}
	c.checked[o.Name] = checkedBlock{version: o.ResourceVersion, round: round}
	return b.CIDR, nil
}

// claimCandidate is a claim as a candidate: its name and UID, so that a
// new claim of the same attachment starts over.
func claimCandidate(o *v1alpha1.IPAMClaim) candidate {
	return candidate{kind: candidateClaim, name: o.Name, ref: string(o.UID)}
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
	pod := metadataObject(podGVK)
	err := c.Live.Get(ctx, types.NamespacedName{Namespace: o.Spec.Pod.Namespace, Name: o.Spec.Pod.Name}, pod)
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
func (c *Collector) releaseOrphan(ctx context.Context, block netip.Prefix, addr netip.Addr, claim string, seq int64) (bool, error) {
	var o v1alpha1.IPAMClaim
	err := c.Live.Get(ctx, types.NamespacedName{Name: claim}, &o)
	if err == nil && records(&o, addr, seq) {
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
	if freed, err := a.ReleaseSlot(ctx, block, addr, claim, uint64(seq)); err != nil || !freed {
		return false, err
	}
	c.Log.Info("released an address no claim holds: "+why, "address", addr.String(), "block", block.String(), "claim", claim, "seq", seq)
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

// The kinds the sweep lists as metadata only: it needs their names (and a
// pod's UID and mirror annotation), never their specs.
var (
	podGVK      = corev1.SchemeGroupVersion.WithKind("Pod")
	podListGVK  = corev1.SchemeGroupVersion.WithKind("PodList")
	nodeGVK     = corev1.SchemeGroupVersion.WithKind("Node")
	nodeListGVK = corev1.SchemeGroupVersion.WithKind("NodeList")
)

func metadataObject(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(gvk)
	return o
}

func metadataList(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{}
	l.SetGroupVersionKind(gvk)
	return l
}

func addrsOf(c *allocator.Claim) []string {
	out := make([]string, len(c.Addresses))
	for i, a := range c.Addresses {
		out[i] = a.Addr.String()
	}
	return out
}
