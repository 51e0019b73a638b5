// Package kubestore is the allocator's Store on the Kubernetes API: blocks,
// claims and node affinities are the CRDs of package v1alpha1, every update
// and delete carries the resourceVersion it read, and creates under
// deterministic names are the atomic claims.
//
// Cost of one ADD on the common path (the node's block has room), in API
// round trips: GET IPAMClaim (idempotence), GET IPAMAffinity (skipped for a
// pool smaller than a block), then per address family GET IPAMBlock and
// PUT IPAMBlock, then POST IPAMClaim: four for single stack, six for dual
// stack, plus the CNI plugin's reads of the pod, node, namespace and the
// IPPools, which it issues in parallel with the first two. Claiming a new
// block (once per block size allocations on a node) adds a field-selected
// LIST of the pool's blocks, a POST of the block and a PUT of the affinity.
// Nothing lists the cluster's allocations.
package kubestore
