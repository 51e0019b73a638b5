// Package integration tests the poolguard-ipam plugin binary end to end:
// built with go build, run as separate processes with CNI_COMMAND and
// stdin exactly as a runtime runs it, against the real kube-apiserver and
// etcd of test/harness. It has no non-test code.
package integration
