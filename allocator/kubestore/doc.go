// Package kubestore is the allocator's Store on the Kubernetes API: blocks,
// claims and node affinities are the CRDs of package v1alpha1, every update
// and delete carries the resourceVersion it read, and creates under
// deterministic names are the atomic claims. Client, its connection, is
// client-go's REST client with fixed paths and plain JSON, so that the CNI
// plugin links neither controller-runtime nor client-go's generated scheme.
//
// Cost of one ADD of the CNI plugin on the common path (the node's block
// has room), in API round trips, independent of the cluster's size:
//
//  1. one parallel round of reads from the API server's watch cache: GET
//     pod, namespace and node (metadata only) and LIST IPPools; the node's
//     IPAMAffinity comes from the node-local cache, and the attachment's
//     IPAMClaim is not read (its create finds an existing one);
//  2. per address family, PUT IPAMBlock, guarded by the resourceVersion
//     of the copy the node last wrote (kept in the node-local cache; the
//     node's plugin processes queue on a node-local lock, so the copy is
//     current unless another node wrote the block); a stale copy costs a
//     failed PUT, a GET and a PUT;
//  3. POST IPAMClaim.
//
// That is 3 sequential round trips and 6 requests for single stack, 4 and
// 7 for dual stack. Claiming a new block (once per block-size allocations
// on a node) adds a GET of the affinity, a metadata-only LIST of the
// pool's blocks (field-selected on spec.pool, from the watch cache), a
// POST of the block and a PUT of the affinity; the pool's first
// allocation adds a GET and PUT of the IPPool (its finalizer). Nothing
// lists the cluster's allocations; only borrowing, when every block of a
// pool is claimed, reads that pool's blocks whole.
package kubestore
