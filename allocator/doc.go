// Package allocator is poolguard's address allocation core. It imports no
// Kubernetes package, not even through policy: it knows pools only as
// address ranges (Range), cut into blocks whose slots it hands out. Which
// pools a pod may draw from is decided before, by policy.ChoosePools.
//
// layout.go cuts a range into blocks and says which addresses are handed
// out; block.go is one block's slots; store.go the narrow Store all state
// goes through (the Kubernetes-backed one is allocator/kubestore, an
// in-memory one allocator/memstore). The Allocator drives it: assign.go
// finds a slot for each wanted address, slot.go takes one in a block,
// newblock.go claims a new block or borrows another node's, release.go
// frees, and retry.go is the one optimistic-concurrency loop every write
// goes through.
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
//   - A block records each release (when, and whose slot it was), so that
//     an address is held back for the Allocator's Cooldown before it is
//     handed out again (a firewall's state and logs then never mistake
//     one pod for the next); allocating drops the records no longer
//     needed, so there is at most one per address.
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
