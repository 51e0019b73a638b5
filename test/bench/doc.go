// Package bench measures what poolguard's admission webhook costs a cluster.
//
// BenchmarkAdmission (in this package's tests) creates the same pods through
// one local kube-apiserver under five admission setups, interleaved so that
// the noise of a shared machine hits them alike, and prints pods per second
// and client-side latency with ratios:
//
//	none      no admission webhook or policy at all
//	noop      a TLS webhook that allows everything, registered exactly as
//	          poolguard's is (rules, matchConditions, failurePolicy): the
//	          floor any webhook pays
//	noop-patch the same, but the pod webhook answers with a constant
//	          one-annotation patch: the floor of any webhook that mutates
//	          pods (the API server applies the patch and reruns its in-tree
//	          mutating plugins), so what poolguard itself adds shows
//	poolguard poolguard's webhook
//	policies  the in-process alternative: a MutatingAdmissionPolicy copying
//	          the namespace's pool annotations onto the pod and a
//	          ValidatingAdmissionPolicy refusing later changes
//
// The package's exported pieces (the pool and namespace fixture, realistic
// pods) are shared with the handler-level benchmark in package webhook.
package bench
