// Package v1alpha1 holds poolguard's public API: the IPPool, the contract
// between the security team that owns address ranges, the admission webhook
// that enforces who may use them, and the allocator that hands out their
// addresses.
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
	// GroupVersion is the API group and version of poolguard's resources.
	GroupVersion = schema.GroupVersion{Group: "ipam.poolguard.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme. It
	// is apimachinery's, so that importing the API pulls in nothing more.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &IPPool{}, &IPPoolList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
