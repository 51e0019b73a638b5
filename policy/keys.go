// Package policy is poolguard's decision core: it parses the pool
// annotations, decides what a pod's pools are frozen to and says whether a
// pod or namespace may use the pools it names. It does no I/O: callers bring
// the pod, the namespace and a snapshot of the pools, which keeps every rule
// table-testable and lets the native and Calico modes share it.
package policy

// Annotation keys, label keys, event reasons and the messages people read.
// They live in one block so that the webhook, the CNI plugin and the docs
// cannot drift apart.
const (
	// AnnotationIPv4Pools is Calico's annotation naming the IPv4 pools of a
	// pod or of a namespace's pods: a JSON list of pool names or CIDRs.
	AnnotationIPv4Pools = "cni.projectcalico.org/ipv4pools"
	// AnnotationIPv6Pools is the IPv6 counterpart of AnnotationIPv4Pools.
	AnnotationIPv6Pools = "cni.projectcalico.org/ipv6pools"
	// AnnotationProvenance is stamped by the mutating webhook on every pod it
	// freezes. It says where each frozen list came from. Its presence is the
	// allocator's proof that the pod passed admission.
	AnnotationProvenance = "ipam.poolguard.dev/provenance"

	// AnnotationMirrorPod is the kubelet's, on the mirror pod it creates
	// in the API for a static pod: the static pod's own UID, which is the
	// UID the runtime passes to the CNI plugin (K8S_POD_UID), while the
	// mirror pod has another.
	AnnotationMirrorPod = "kubernetes.io/config.mirror"

	// AnnotationNamespaceSelector, on a Calico IPPool of a Calico older
	// than v3.31 (which has no spec.namespaceSelector), states the same
	// rule in Calico's selector language. Only whoever may edit the pool
	// can set it; spec.namespaceSelector wins where both are set.
	AnnotationNamespaceSelector = "ipam.poolguard.dev/namespace-selector"

	// LabelOptOut, set to "true" on a namespace, takes the namespace out
	// of every namespaced webhook's namespaceSelector: its pods are
	// neither frozen nor checked, and the CNI plugin treats them as pods
	// that never passed the webhook (the documented fail-safe, never a
	// restricted pool). Only a cluster administrator may set it (see
	// webhook.OptOutVerb).
	LabelOptOut = "ipam.poolguard.dev/opt-out"

	// LabelNamespaceName is set by the API server on every namespace; a
	// namespace owner cannot change it, so it is the label to select
	// namespaces by name in an IPPool's namespaceSelector.
	LabelNamespaceName = "kubernetes.io/metadata.name"

	// SourcePod means the pod named the pools itself.
	SourcePod Source = "pod"
	// SourceNamespace means the pools were copied from the namespace's
	// annotation when the pod was created.
	SourceNamespace Source = "namespace"
	// SourceDefault means neither named pools: the allocator uses the
	// Automatic pools that match the pod.
	SourceDefault Source = "default"

	// ReasonFrozen is the event reason when a pod's pools are frozen.
	ReasonFrozen = "PoolsFrozen"
	// ReasonDenied is the event and metric reason for a denied request.
	ReasonDenied = "PoolsDenied"
	// ReasonDeletionHeld is the condition reason on an IPPool whose deletion
	// waits for its allocations to be released.
	ReasonDeletionHeld = "DeletionHeld"

	// MaxAnnotationBytes bounds a pool annotation's value. Real lists name a
	// handful of pools; anything larger is a mistake or an attack on the
	// webhook's memory.
	MaxAnnotationBytes = 4096
	// MaxPoolsPerList bounds how many pools one annotation may name.
	MaxPoolsPerList = 16
	// MaxProvenanceBytes bounds the provenance annotation: its pins repeat
	// every entry of two full lists (MaxAnnotationBytes each) with a CIDR.
	MaxProvenanceBytes = 3 * MaxAnnotationBytes

	// MsgImmutable tells a person why an edit was refused and what to do.
	MsgImmutable = "the pool annotations and %s are frozen when a pod is created and cannot be added, changed or removed; delete the pod and create it again (its controller will do so on rollout) to pick up new pools"
	// MsgNotFrozen is the denial for a pod that reached validation without
	// passing poolguard's mutating webhook.
	MsgNotFrozen = "pod was not frozen by poolguard's mutating webhook (annotation %s missing or not what it would write); check that the MutatingWebhookConfiguration is installed"
)
