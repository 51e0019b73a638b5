// Package controller holds the allocator's cluster-side controllers, run
// leader-elected by poolguard's manager: the garbage collector (gc.go),
// which frees addresses whose pod is gone and blocks nobody needs, in a
// full sweep of the cache and, for a deleted pod's claims, as soon as the
// grace period allows (podgone.go); the IPPool status controller
// (status.go), which keeps each pool's counts and its allocations
// finalizer current; and the history recorder (history.go). CacheOptions
// (cache.go) are the lean cache options of the manager they run in.
package controller
