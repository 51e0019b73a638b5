// Package ipam is the poolguard-ipam CNI plugin: it reads the pod's frozen
// pool annotations, lets policy.ChoosePools decide which pools the pod
// draws from, and allocates from their ranges through the allocator, with its state in the Kubernetes API.
// config.go parses the plugin's configuration, args.go the pod identity,
// facts.go reads the cluster, plugin.go sets up what every verb shares
// (configuration, client, allocator, node lock), and each verb has its
// file: add.go, del.go, check.go, gc.go, status.go. lock.go queues the node's processes, blockcache.go keeps the node's
// blocks and affinity between them, and errors.go maps the allocator's
// errors to CNI error codes, at the edge.
package ipam
