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
)

// IPPoolSpec is what a security team declares about a range of addresses.
type IPPoolSpec struct {
	// CIDR is the IPv4 or IPv6 range of the pool, in canonical form (no host
	// bits set). It cannot change while addresses are allocated from it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
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
	Family string `json:"family,omitempty"`

	// Capacity is the number of addresses the pool can hand out.
	// +optional
	Capacity int64 `json:"capacity,omitempty"`

	// Allocated is the number of addresses currently allocated.
	// +optional
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
