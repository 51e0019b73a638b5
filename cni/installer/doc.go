// Package installer puts poolguard's CNI IPAM plugin onto a node, from the
// CNI installer DaemonSet of the Helm chart: it copies the poolguard-ipam
// binary into the host's CNI bin directory, writes the plugin's kubeconfig
// (a token of the plugin's ServiceAccount bound to this node's Node object,
// and the cluster CA, embedded, mode 0600) and, when the chart provides
// one, the node's CNI network configuration list with poolguard-ipam's
// per-node settings filled in. Each file is written atomically (a
// temporary file in the target directory, then rename) so the container
// runtime never runs or reads a half-written file, and in that order, so a
// runtime that finds the network configuration finds the plugin ready.
//
// The installer's own identity (the DaemonSet's ServiceAccount) only
// requests the plugin's tokens (TokenRequest) and reads Nodes; it is never
// written to the host. It keeps running: it requests a new token when two
// thirds of the current one's lifetime have passed, retrying with backoff,
// and puts back any file changed or removed on the host. On SIGTERM it
// leaves everything in place, so the node keeps allocating across an
// installer restart or upgrade.
//
// It is a Go program rather than a shell loop so that the image needs no
// shell (distroless), and so that the atomic writes, modes, order and
// refresh schedule are tested.
package installer
