package kubestore

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// BlockToAPI converts a block to its object.
func BlockToAPI(b *allocator.Block) *v1alpha1.IPAMBlock {
	o := &v1alpha1.IPAMBlock{
		ObjectMeta: metav1.ObjectMeta{
			Name: allocator.BlockName(b.CIDR), ResourceVersion: b.Version,
			Annotations: map[string]string{v1alpha1.AnnotationBlockCIDR: b.CIDR.String(), v1alpha1.AnnotationBlockNode: b.Node},
		},
		Spec: v1alpha1.IPAMBlockSpec{
			CIDR:      b.CIDR.String(),
			Pool:      b.Pool,
			PoolCIDR:  b.PoolCIDR.String(),
			Node:      b.Node,
			NextSeq:   int64(b.NextSeq),
			Cursor:    int32(b.Cursor),
			Allocated: int32(len(b.Slots)),
		},
	}
	for _, off := range b.Offsets() {
		s := b.Slots[off]
		o.Spec.Allocations = append(o.Spec.Allocations, v1alpha1.BlockAllocation{Slot: int32(off), Claim: s.Claim, Node: s.Node, Seq: int64(s.Seq)})
	}
	if len(b.Released) > 0 {
		o.Spec.Released = make(map[string]v1alpha1.BlockRelease, len(b.Released))
		for off, r := range b.Released {
			o.Spec.Released[strconv.Itoa(off)] = v1alpha1.BlockRelease{Node: r.Node, At: metav1.NewTime(ceilSecond(r.At))}
		}
	}
	return o
}

// ceilSecond rounds t up to the second, the precision of metav1.Time: a
// release is stored no earlier than it happened, so its cooldown never
// ends early.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}

// BlockFromAPI converts an object to a block.
func BlockFromAPI(o *v1alpha1.IPAMBlock) (*allocator.Block, error) {
	cidr, err := netip.ParsePrefix(o.Spec.CIDR)
	if err != nil {
		return nil, fmt.Errorf("%w: IPAMBlock %s: cidr: %w", allocator.ErrInvalidState, o.Name, err)
	}
	pcidr, err := netip.ParsePrefix(o.Spec.PoolCIDR)
	if err != nil {
		return nil, fmt.Errorf("%w: IPAMBlock %s: poolCIDR: %w", allocator.ErrInvalidState, o.Name, err)
	}
	if o.Name != allocator.BlockName(cidr) {
		return nil, fmt.Errorf("%w: IPAMBlock %s holds cidr %s, whose block is named %s", allocator.ErrInvalidState, o.Name, cidr, allocator.BlockName(cidr))
	}
	if o.Spec.NextSeq < 0 || o.Spec.Cursor < 0 {
		return nil, fmt.Errorf("%w: IPAMBlock %s: negative nextSeq %d or cursor %d", allocator.ErrInvalidState, o.Name, o.Spec.NextSeq, o.Spec.Cursor)
	}
	b := &allocator.Block{
		CIDR: cidr, Pool: o.Spec.Pool, PoolCIDR: pcidr, Node: o.Spec.Node,
		NextSeq: uint64(o.Spec.NextSeq), Cursor: int(o.Spec.Cursor),
		Slots: make(map[int]allocator.Slot, len(o.Spec.Allocations)), Version: o.ResourceVersion,
	}
	for _, a := range o.Spec.Allocations {
		if _, dup := b.Slots[int(a.Slot)]; dup || a.Seq < 0 {
			return nil, fmt.Errorf("%w: IPAMBlock %s: slot %d listed twice or with a negative sequence number", allocator.ErrInvalidState, o.Name, a.Slot)
		}
		b.Slots[int(a.Slot)] = allocator.Slot{Claim: a.Claim, Node: a.Node, Seq: uint64(a.Seq)}
	}
	if len(o.Spec.Released) > 0 {
		b.Released = make(map[int]allocator.Cooling, len(o.Spec.Released))
		for k, r := range o.Spec.Released {
			off, err := strconv.Atoi(k)
			if err != nil || strconv.Itoa(off) != k {
				return nil, fmt.Errorf("%w: IPAMBlock %s: released slot %q is not a slot number", allocator.ErrInvalidState, o.Name, k)
			}
			b.Released[off] = allocator.Cooling{Node: r.Node, At: r.At.Time}
		}
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("IPAMBlock %s: %w", o.Name, err)
	}
	return b, nil
}

// ClaimToAPI converts a claim to its object.
func ClaimToAPI(c *allocator.Claim) *v1alpha1.IPAMClaim {
	o := &v1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: c.ID, ResourceVersion: c.Version},
		Spec: v1alpha1.IPAMClaimSpec{
			Network: c.Network, ContainerID: c.ContainerID, IfName: c.IfName, Node: c.Node,
			Pod: v1alpha1.PodReference{Namespace: c.Pod.Namespace, Name: c.Pod.Name, UID: c.Pod.UID},
		},
	}
	for _, a := range c.Addresses {
		o.Spec.Addresses = append(o.Spec.Addresses, v1alpha1.ClaimAddress{
			Pool: a.Pool, PoolCIDR: a.PoolCIDR.String(), Block: a.Block.String(), Address: a.Addr.String(), Seq: int64(a.Seq),
		})
	}
	o.Labels = ClaimShardLabels(o)
	return o
}

// ClaimShardLabels returns the labels that file a claim under the history
// shards of its addresses (nil when it has none).
func ClaimShardLabels(o *v1alpha1.IPAMClaim) map[string]string {
	var l map[string]string
	for _, a := range o.Spec.Addresses {
		addr, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		if l == nil {
			l = map[string]string{}
		}
		key := v1alpha1.LabelClaimShardIPv6
		if addr.Unmap().Is4() {
			key = v1alpha1.LabelClaimShardIPv4
		}
		l[key] = history.ShardLabel(history.ShardOf(addr))
	}
	return l
}

// ClaimFromAPI converts an object to a claim.
func ClaimFromAPI(o *v1alpha1.IPAMClaim) (*allocator.Claim, error) {
	c := &allocator.Claim{
		ID: o.Name, Network: o.Spec.Network, ContainerID: o.Spec.ContainerID, IfName: o.Spec.IfName, Node: o.Spec.Node,
		Pod:      allocator.PodRef{Namespace: o.Spec.Pod.Namespace, Name: o.Spec.Pod.Name, UID: o.Spec.Pod.UID},
		Version:  o.ResourceVersion,
		Released: o.DeletionTimestamp != nil,
	}
	for _, a := range o.Spec.Addresses {
		pc, err1 := netip.ParsePrefix(a.PoolCIDR)
		bc, err2 := netip.ParsePrefix(a.Block)
		ad, err3 := netip.ParseAddr(a.Address)
		if err1 != nil || err2 != nil || err3 != nil || !bc.Contains(ad) || !pc.Contains(bc.Addr()) || pc.Bits() > bc.Bits() {
			return nil, fmt.Errorf("%w: IPAMClaim %s: address entry %+v is not an address of its block in its pool", allocator.ErrInvalidState, o.Name, a)
		}
		c.Addresses = append(c.Addresses, allocator.Assigned{Pool: a.Pool, PoolCIDR: pc, Block: bc, Addr: ad, Seq: uint64(a.Seq)})
	}
	return c, nil
}

// AffinityToAPI converts an affinity to its object.
func AffinityToAPI(a *allocator.Affinity) *v1alpha1.IPAMAffinity {
	o := &v1alpha1.IPAMAffinity{
		ObjectMeta: metav1.ObjectMeta{Name: a.Node, ResourceVersion: a.Version},
		Spec:       v1alpha1.IPAMAffinitySpec{Node: a.Node},
	}
	for pool, cidrs := range a.Blocks {
		for _, c := range cidrs {
			o.Spec.Blocks = append(o.Spec.Blocks, v1alpha1.AffineBlock{Pool: pool, CIDR: c.String()})
		}
	}
	return o
}

// AffinityFromAPI converts an object to an affinity.
func AffinityFromAPI(o *v1alpha1.IPAMAffinity) (*allocator.Affinity, error) {
	a := &allocator.Affinity{Node: o.Spec.Node, Blocks: map[string][]netip.Prefix{}, Version: o.ResourceVersion}
	if a.Node == "" {
		a.Node = o.Name
	}
	if a.Node != o.Name {
		return nil, fmt.Errorf("%w: IPAMAffinity %s is for node %q", allocator.ErrInvalidState, o.Name, a.Node)
	}
	for _, b := range o.Spec.Blocks {
		c, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			return nil, fmt.Errorf("%w: IPAMAffinity %s: %w", allocator.ErrInvalidState, o.Name, err)
		}
		a.Blocks[b.Pool] = append(a.Blocks[b.Pool], c)
	}
	return a, nil
}
