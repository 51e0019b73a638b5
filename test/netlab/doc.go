// Package netlab builds, on one machine, the network a pod's address
// matters on: a "node" network namespace where the CNI chain (the reference
// bridge plugin with poolguard-ipam) runs, one network namespace per pod,
// and a "legacy firewall" namespace behind nftables rules that accept TCP
// only from the trusted pools' ranges. The end-to-end tests and the demo
// share it.
//
// Everything lives in network namespaces whose names start with a prefix
// of the lab's (Prefix); nothing is created in the root namespace, so the
// machine's own network is left alone, and the test traffic never leaves
// the lab's namespaces and loopback. Close removes it all; Leftovers checks
// that it did. It needs root, ip (iproute2) and nft (nftables).
package netlab
