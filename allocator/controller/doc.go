// Package controller holds the allocator's cluster-side controllers, run
// leader-elected by poolguard's manager: the garbage collector (gc.go),
// which frees addresses whose pod is gone and blocks nobody needs, and the
// IPPool status controller (status.go), which keeps each pool's counts and
// its allocations finalizer current.
package controller
