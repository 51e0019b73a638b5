// Package cluster starts, on this machine, a real single-node Kubernetes
// cluster from the pinned tools in bin/: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, containerd (Debian's) and a
// kubelet whose pods get their addresses from the reference bridge plugin
// and an IPAM plugin (host-local, or poolguard-ipam).
//
// Everything runs inside one network namespace the cluster creates (the
// "node"): every component listens on that namespace's loopback, the CNI
// bridge, the pods' veths and any iptables or nftables rule the kubelet
// writes live there too, and deleting the namespace takes them all away.
// The machine's root namespace is only read, to check that the cluster's
// ranges collide with none of its addresses or routes. The test reaches
// the API server through sockets opened inside the namespace (Dial).
//
// What the kubelet and containerd write outside their configured
// directories is put back or removed by Close: the kernel tunables the
// kubelet sets (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops
// on this machine), the kubepods cgroups (under a private cgroup root),
// the kubelet's device-plugin socket in /var/lib/kubelet and its links in
// /var/log/containers, the shims' socket directory /run/containerd/s and
// the shims themselves, libcni's result cache in /var/lib/cni/results.
// Leftovers compares the machine with a snapshot taken before Start.
//
// It needs root, ip (iproute2), nsenter (util-linux), containerd, runc and
// ctr (make cluster-deps), and the tools make cluster-tools builds.
package cluster
