package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AssignmentMode says whether a pool serves pods that name no pool.
// +kubebuilder:validation:Enum=Automatic;Manual
type AssignmentMode string

const (
	// AssignmentAutomatic pools are the defaults for pods that name no pool.
	AssignmentAutomatic AssignmentMode = "Automatic"
	// AssignmentManual pools are used only by pods (or namespaces) that name
	// them: the mode for ranges a firewall trusts.
	AssignmentManual AssignmentMode = "Manual"

	// FinalizerAllocations holds an IPPool's deletion while addresses are
	// allocated from it. The allocator adds it before the pool's first
	// allocation; the garbage collector removes it when the last is gone.
	// The webhook reads it as "in use".
	FinalizerAllocations = "ipam.poolguard.dev/allocations"
)

// IPPoolSpec is what a security team declares about a range of addresses.
//
// The block size bounds per family are policy.MinBlockSizeV4 and friends;
// markers cannot name Go constants, so TestIPPoolCEL checks the rules
// against them. 0 or absent means the family's default. The messages are
// fixed strings: a messageExpression that converts a number or a CIDR to a
// string has no size bound, and the API server refuses its estimated cost.
// +kubebuilder:validation:XValidation:rule=`!has(self.blockSize) || self.blockSize == 0 || !isCIDR(self.cidr) || cidr(self.cidr).ip().family() != 4 || (self.blockSize >= 20 && self.blockSize <= 32)`,message="blockSize is out of range for IPv4 pools (20 to 32)",fieldPath=`.blockSize`,reason=FieldValueInvalid
// +kubebuilder:validation:XValidation:rule=`!has(self.blockSize) || self.blockSize == 0 || !isCIDR(self.cidr) || cidr(self.cidr).ip().family() != 6 || (self.blockSize >= 116 && self.blockSize <= 128)`,message="blockSize is out of range for IPv6 pools (116 to 128)",fieldPath=`.blockSize`,reason=FieldValueInvalid
type IPPoolSpec struct {
	// CIDR is the IPv4 or IPv6 range of the pool, in canonical form (no host
	// bits set). It cannot change while addresses are allocated from it.
	//
	// The API server itself refuses what is not a CIDR and a CIDR with host
	// bits set (CEL rules), so those hold while poolguard's webhook is down;
	// the webhook adds the overlap and in-use checks.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule=`isCIDR(self)`,messageExpression=`'cidr "' + self + '" is not a CIDR: write an IPv4 or IPv6 range with its prefix length, such as 198.51.100.0/24 or 2001:db8::/48 (no zone, no leading zeros, and no IPv4-mapped IPv6 range: write the IPv4 range)'`,reason=FieldValueInvalid
	// +kubebuilder:validation:XValidation:rule=`!isCIDR(self) || cidr(self) == cidr(self).masked()`,messageExpression=`'cidr "' + self + '" has host bits set: write the network address of the range, every bit after the prefix length zero (198.51.100.0/24, not 198.51.100.7/24)'`,reason=FieldValueInvalid
	CIDR string `json:"cidr"`

	// BlockSize is the prefix length of the blocks the allocator hands to
	// nodes. Defaults to 26 for IPv4 and 122 for IPv6. A pool smaller than a
	// block is still shared by every node.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	BlockSize int32 `json:"blockSize,omitempty"`

	// Disabled stops new allocations from the pool; existing ones stay.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// NodeSelector selects the nodes whose pods may draw from the pool.
	// Empty or absent: every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// NamespaceSelector selects the namespaces whose pods may draw from the
	// pool. Empty or absent: every namespace. Select on the
	// kubernetes.io/metadata.name label to name namespaces: the API server
	// sets it and namespace owners cannot forge it.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// AssignmentMode is Automatic (a default pool for pods that name none)
	// or Manual (used only when named). Defaults to Automatic.
	// +optional
	// +kubebuilder:default=Automatic
	AssignmentMode AssignmentMode `json:"assignmentMode,omitempty"`
}

// IPPoolStatus is kept current by poolguard's controller.
type IPPoolStatus struct {
	// Family is IPv4 or IPv6, derived from the CIDR.
	// +optional
	// +kubebuilder:validation:Enum=IPv4;IPv6
	Family string `json:"family,omitempty"`

	// Capacity is the number of addresses the pool can hand out.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Capacity int64 `json:"capacity,omitempty"`

	// Allocated is the number of addresses currently allocated.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Allocated int64 `json:"allocated"`

	// Free is Capacity minus Allocated.
	// +optional
	Free int64 `json:"free"`

	// Conditions tell why the pool is or is not ready, and why a deletion
	// is held.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IPPool is a range of addresses that pods may draw from, and the rules for
// who may.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ippool;pgpool,categories=poolguard
// +kubebuilder:printcolumn:name="CIDR",type=string,JSONPath=`.spec.cidr`
// +kubebuilder:printcolumn:name="Family",type=string,JSONPath=`.status.family`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.assignmentMode`
// +kubebuilder:printcolumn:name="Allocated",type=integer,JSONPath=`.status.allocated`
// +kubebuilder:printcolumn:name="Free",type=integer,JSONPath=`.status.free`
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=`.spec.disabled`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec   `json:"spec"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolList is a list of IPPools.
//
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}
