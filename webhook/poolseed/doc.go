// Package poolseed applies the IPPools a Helm release declares.
//
// The chart cannot create IPPools itself on a first install: every IPPool
// passes poolguard's own validating and mutating webhooks (failurePolicy
// Fail), which are not serving while the release that creates them is being
// installed. So the chart renders the pools into a ConfigMap, and the
// elected poolguard-webhook replica applies them (server-side apply, field
// manager FieldManager) once its webhook server serves and its informers are
// synced, through the API server like any client: each pool still passes
// the CRD's rules and the webhook's overlap and in-use checks. A pool the
// API server refuses is retried with backoff (a conflicting pool may be
// deleted, the Service may not have endpoints yet) and reported as a Warning
// Event on the ConfigMap and in the log. Readiness is deliberately not tied
// to it: a bad pool in values must not take pod admission down cluster-wide.
//
// Pools are never deleted here: one removed from values, or left behind by
// helm uninstall, keeps its allocations and stays until a person deletes it.
package poolseed
