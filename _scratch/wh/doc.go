// Package webhook is poolguard's admission server: it freezes a pod's pool
// annotations at creation, refuses later edits, and validates pods,
// namespaces and IPPools against the pools and who may use them. The
// decisions themselves live in package policy; this package turns admission
// requests into policy inputs (from informer caches, never an API call in the
// common path) and policy outcomes into admission responses, warnings,
// metrics and events.
package webhook
