// Package ipam is the poolguard-ipam CNI plugin: it reads the pod's frozen
// pool annotations and allocates from those pools (or from the default
// pools) through the allocator, with its state in the Kubernetes API.
// config.go parses the plugin's configuration, args.go the pod identity,
// facts.go reads the cluster, plugin.go implements the CNI verbs,
// lock.go queues the node's processes, blockcache.go keeps the node's
// blocks and affinity between them, and errors.go maps the allocator's
// errors to CNI error codes, at the edge.
package ipam
