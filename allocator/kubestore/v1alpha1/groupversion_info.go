// Package v1alpha1 holds the allocator's state objects: IPAMBlock (a block
// of a pool, claimed by a node, with its used slots), IPAMClaim (what one
// CNI attachment holds), IPAMAffinity (which blocks a node holds) and
// IPAMHistory (a segment of the attribution history: who held which
// address, when). They
// are the allocator's internals, not a user API: people read them to debug
// and the garbage collector repairs them; nobody should edit them.
//
// +kubebuilder:object:generate=true
// +groupName=ipam.poolguard.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of the allocator's objects
	// (the IPPool's group).
	GroupVersion = schema.GroupVersion{Group: "ipam.poolguard.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme. It
	// is apimachinery's, so that the CNI plugin, which imports these types,
	// pulls in nothing more.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &IPAMBlock{}, &IPAMBlockList{}, &IPAMClaim{}, &IPAMClaimList{}, &IPAMAffinity{}, &IPAMAffinityList{}, &IPAMHistory{}, &IPAMHistoryList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
