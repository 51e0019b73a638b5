// Package scale measures what poolguard costs at Kubernetes' scalability
// envelope (5,000 nodes, 10,000 namespaces, 150,000 pods, and 1,000
// IPPools), on one machine: the test harness's real kube-apiserver and etcd
// populated as a large cluster's would be (objects, no kubelets), with the
// poolguard-webhook binary running as the chart runs it (a leader with the
// allocator's controllers and a follower serving admission), pods created
// through admission, and their allocations written through the
// allocator's own store. Every measure is taken twice in one run, on the
// cluster before it is populated and after, and printed side by side as a
// ratio (BenchmarkScale, `make bench-scale`).
//
// shape.go describes the cluster (pure), populate.go creates it,
// replicas.go runs the webhook binary, measure.go takes the measures and
// table.go prints them.
package scale
