// Package kubestore is the allocator's Store on the Kubernetes API: blocks,
// claims and node affinities are the CRDs of package v1alpha1, every update
// and delete carries the resourceVersion it read, and creates under
// deterministic names are the atomic claims.
//
// Cost of one ADD of the CNI plugin on the common path (the node's block
// has room), in API round trips, independent of the cluster's size:
//
//  1. one parallel round of reads: GET IPAMClaim (idempotence) and GET
//     IPAMAffinity (the node's blocks), both from etcd, plus GET pod,
//     namespace and node (metadata only) and LIST IPPools, from the API
//     server's watch cache;
//  2. per address family, PUT IPAMBlock, guarded by the resourceVersion
//     of the copy the node last wrote (kept in a node-local cache; the
//     node's plugin processes take turns on a node-local lock, so the copy
//     is current unless another node wrote the block); a stale copy costs
//     a failed PUT, a GET and a PUT;
//  3. POST IPAMClaim.
//
// That is 3 sequential round trips and 8 requests for single stack, 4 and
// 9 for dual stack; a repeated ADD stops after step 1. Claiming a new
// block (once per block-size allocations on a node) adds a LIST of the
// pool's blocks (field-selected on spec.pool), a POST of the block and a
// PUT of the affinity; the pool's first allocation adds a GET and PUT of
// the IPPool (its finalizer). Nothing lists the cluster's allocations.
package kubestore
