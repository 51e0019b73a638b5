package allocator

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
)

// PodRef identifies the pod an allocation serves.
type PodRef struct {
	Namespace string
	Name      string
	UID       string
}

// String renders the pod as namespace/name.
func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// Assigned is one address held by a claim.
type Assigned struct {
	// Pool is the pool's name.
	Pool string
	// PoolCIDR is the pool's range; its length is the prefix length
	// reported to the runtime.
	PoolCIDR netip.Prefix
	// Block is the block the address was taken from.
	Block netip.Prefix
	// Addr is the address.
	Addr netip.Addr
	// Seq is the slot's sequence number, needed to release it.
	Seq uint64
}

// Claim is what one CNI attachment (network, container ID, interface)
// holds.
type Claim struct {
	// ID is ClaimID(Network, ContainerID, IfName).
	ID string
	// Network is the CNI network's name.
	Network     string
	ContainerID string
	IfName      string
	// Node is the node the claim was made on.
	Node string
	// Pod is the pod the addresses serve.
	Pod PodRef
	// Addresses are the addresses held, one per family.
	Addresses []Assigned
	// Version is the store's version of the object.
	Version string
	// Released says the claim's deletion has been asked for: its
	// addresses are freed (or being freed), and the store keeps it only
	// until the attribution history has recorded it. It is no longer the
	// attachment's.
	Released bool
}

// ClaimID derives the claim's ID from the CNI attachment key. It is a hash
// so that it is a valid object name whatever the runtime's container IDs
// and interface names look like, and deterministic so that a retried ADD
// finds what the first attempt did.
func ClaimID(network, containerID, ifName string) string {
	h := sha256.Sum256([]byte(network + "\x00" + containerID + "\x00" + ifName))
	return "c-" + hex.EncodeToString(h[:16])
}
