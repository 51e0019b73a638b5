// Package installer puts poolguard's CNI IPAM plugin onto a node, from the
// CNI installer DaemonSet of the Helm chart: it copies the poolguard-ipam
// binary into the host's CNI bin directory and writes the plugin's
// kubeconfig (the DaemonSet service account's token and the cluster CA,
// embedded, mode 0600), each atomically (a temporary file in the target
// directory, then rename) so the container runtime never runs or reads a
// half-written file. It keeps running and rewrites the kubeconfig when the
// kubelet rotates the token, and reinstalls the binary if it goes missing.
//
// It is a Go program rather than a shell loop so that the image needs no
// shell (distroless), and so that the atomic writes and modes are tested.
package installer
