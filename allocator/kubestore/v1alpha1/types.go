package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The allocator's storage keys: internal to the Kubernetes store, never
// set by people.
const (
	// AnnotationBlockCIDR and AnnotationBlockNode repeat an IPAMBlock's
	// spec.cidr and spec.node in its metadata, so a node looking for an
	// unclaimed block can list a pool's blocks as metadata only, without
	// every block's slots.
	AnnotationBlockCIDR = "ipam.poolguard.dev/cidr"
	AnnotationBlockNode = "ipam.poolguard.dev/node"
)

// IPAMBlockSpec is a block's whole state. It lives in spec (no status
// subresource) so that one write, guarded by resourceVersion, changes it.
type IPAMBlockSpec struct {
	// CIDR is the block's range.
	CIDR string `json:"cidr"`
	// Pool is the name of the IPPool the block belongs to.
	Pool string `json:"pool"`
	// PoolCIDR is the pool's range when the block was made.
	PoolCIDR string `json:"poolCIDR"`
	// Node is the node that claimed the block; empty for the one shared
	// block of a pool no larger than a block.
	// +optional
	Node string `json:"node,omitempty"`
	// NextSeq is the last sequence number handed out in the block.
	NextSeq int64 `json:"nextSeq"`
	// Cursor is the slot where the next search for a free address starts.
	Cursor int32 `json:"cursor"`
	// Allocated is len(allocations), for kubectl.
	Allocated int32 `json:"allocated"`
	// Allocations are the used slots. A block has at most 4096 slots
	// (the smallest block sizes policy allows: /20 and /116), about 70
	// bytes each: under 300 KiB, far from etcd's 1.5 MiB limit.
	// A slot appears once: the API server refuses a block that lists
	// a slot twice, whoever writes it.
	// +optional
	// +listType=map
	// +listMapKey=slot
	// +kubebuilder:validation:MaxItems=4096
	Allocations []BlockAllocation `json:"allocations,omitempty"`
	// Released records the slots freed recently, keyed by slot (the
	// address's offset in the block, in decimal): the plugin does not
	// hand an address out again until its cooldown (ipam.cooldown) has
	// passed since the release, and drops the records that hold nothing
	// back whenever it allocates in the block. A map, not a list, so that
	// the chart's admission policy finds a slot's record by its key: a
	// node's plugin may add records only of its own slots.
	// +optional
	// +kubebuilder:validation:MaxProperties=4096
	Released map[string]BlockRelease `json:"released,omitempty"`
}

// BlockRelease records a slot's last release.
type BlockRelease struct {
	// Node is the node whose slot it was.
	Node string `json:"node"`
	// At is when the slot was freed, to the second (rounded up, so that
	// the cooldown never ends early).
	At metav1.Time `json:"at"`
}

// BlockAllocation is one used slot.
type BlockAllocation struct {
	// Slot is the address's offset in the block.
	Slot int32 `json:"slot"`
	// Claim is the name of the IPAMClaim holding it.
	Claim string `json:"claim"`
	// Node is the node of that claim: a node's plugin may add and remove
	// only its own node's slots (the chart's admission policy
	// <release>-node-plugin-ipam), also in another node's block.
	// +optional
	Node string `json:"node,omitempty"`
	// Seq is the block's sequence number when the slot was taken; a
	// release must name it.
	Seq int64 `json:"seq"`
}

// IPAMBlock is a block of an IPPool's addresses. Its name is derived from
// its CIDR, so creating it is the atomic claim of the block.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=poolguard
// +kubebuilder:selectablefield:JSONPath=`.spec.pool`
// +kubebuilder:selectablefield:JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="Pool",type=string,JSONPath=`.spec.pool`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Allocated",type=integer,JSONPath=`.spec.allocated`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAMBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMBlockSpec `json:"spec"`
}

// IPAMBlockList is a list of IPAMBlocks.
//
// +kubebuilder:object:root=true
type IPAMBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMBlock `json:"items"`
}

// PodReference names the pod an allocation serves.
type PodReference struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// +optional
	UID string `json:"uid,omitempty"`
}

// ClaimAddress is one address a claim holds.
type ClaimAddress struct {
	// Pool is the IPPool's name, PoolCIDR its range.
	Pool     string `json:"pool"`
	PoolCIDR string `json:"poolCIDR"`
	// Block is the CIDR of the block the address is in.
	Block string `json:"block"`
	// Address is the address itself.
	Address string `json:"address"`
	// Seq is the slot's sequence number.
	Seq int64 `json:"seq"`
}

// IPAMClaimSpec is what one CNI attachment holds.
type IPAMClaimSpec struct {
	// Network is the CNI network's name.
	// +optional
	Network     string       `json:"network,omitempty"`
	ContainerID string       `json:"containerID"`
	IfName      string       `json:"ifName"`
	Node        string       `json:"node"`
	Pod         PodReference `json:"pod"`
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=2
	Addresses []ClaimAddress `json:"addresses,omitempty"`
}

// IPAMClaim records the addresses of one (container ID, interface). Its
// name is a hash of both, so a retried ADD finds it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=poolguard
// +kubebuilder:selectablefield:JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.pod.namespace`
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.spec.pod.name`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.addresses[*].address`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAMClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMClaimSpec `json:"spec"`
}

// IPAMClaimList is a list of IPAMClaims.
//
// +kubebuilder:object:root=true
type IPAMClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMClaim `json:"items"`
}

// AffineBlock is one block a node holds.
type AffineBlock struct {
	Pool string `json:"pool"`
	CIDR string `json:"cidr"`
}

// IPAMAffinitySpec lists the blocks a node holds.
type IPAMAffinitySpec struct {
	Node string `json:"node"`
	// +optional
	// +listType=atomic
	Blocks []AffineBlock `json:"blocks,omitempty"`
}

// IPAMAffinity is named after its node and lists the blocks the node has
// claimed, so an ADD finds its node's blocks with one GET instead of a list.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=poolguard
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAMAffinity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPAMAffinitySpec `json:"spec"`
}

// IPAMAffinityList is a list of IPAMAffinities.
//
// +kubebuilder:object:root=true
type IPAMAffinityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAMAffinity `json:"items"`
}
