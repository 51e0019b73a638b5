// Package e2e proves poolguard's story end to end, as a user lives it: a
// real kube-apiserver calls the admission webhook over TLS, pods are real
// Pod objects admitted (and frozen) by it, their sandboxes are network
// namespaces set up by the reference bridge plugin chained with
// poolguard-ipam through cnitool, and a legacy firewall in another network
// namespace lets TCP through by source range with nftables. Every verdict
// is a real TCP connection through the kernel.
//
// It needs root, ip and nft (make e2e-tools installs what is missing) and
// the tools make builds into bin/. Without root it fails, saying so.
package e2e
