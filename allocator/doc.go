// Package allocator is poolguard's address allocation core. It has no
// Kubernetes imports: it decides which pool a pod draws from (choose.go),
// how a pool is cut into blocks and which addresses of a block may be handed
// out (layout.go, block.go), and drives a narrow Store (store.go) through the
// claim, allocate and release steps (allocator.go). The Kubernetes-backed
// Store lives in allocator/kubestore; an in-memory one in allocator/memstore.
//
// State model, after Calico's block-with-affinity design:
//
//   - A pool is cut into blocks of 2^(bits-blockSize) addresses. A node
//     claims a block by creating it under a name derived from its CIDR, so
//     the create itself is the atomic claim: two racing nodes cannot both
//     win. A pool no larger than one block is a single shared block that
//     every node allocates from.
//   - A block records, per used slot, the claim that holds it and a sequence
//     number drawn from the block's counter. A release names both, so a
//     stale release (a retried DEL, a garbage collector that looked a while
//     ago) can never free an address that was reassigned meanwhile.
//   - A claim records what one (container ID, interface) holds. It is
//     written after the addresses, so an ADD that crashed before writing it
//     leaves slots that name the claim: the retried ADD finds and reuses
//     them, and the garbage collector frees them once the grace period has
//     passed without a claim.
//
// Addresses handed out: every address of a pool, except, for IPv4 pools of
// /30 or larger, the pool's first (network) and last (broadcast) address,
// and for IPv6 pools of /126 or larger, the pool's first address (the
// subnet-router anycast address, RFC 4291 §2.6.1). Block boundaries reserve
// nothing: pods get host routes, so a block is not a subnet.
package allocator
