// Package v1alpha1 holds the allocator's state objects: IPAMBlock (a block
// of a pool, claimed by a node, with its used slots), IPAMClaim (what one
// CNI attachment holds) and IPAMAffinity (which blocks a node holds). They
// are the allocator's internals, not a user API: people read them to debug
// and the garbage collector repairs them; nobody should edit them.
//
// +kubebuilder:object:generate=true
// +groupName=ipam.poolguard.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of the allocator's objects
	// (the IPPool's group).
	GroupVersion = schema.GroupVersion{Group: "ipam.poolguard.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
