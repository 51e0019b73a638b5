package poolctl

import (
	"net/netip"

	"poolguard.dev/poolguard/policy"
)

// Pod is what the decisions need of a pod, whether it comes from a
// manifest or from the API server.
type Pod struct {
	Namespace, Name string
	// Annotations are the pod's annotations: the pool lists it names and,
	// for a running pod, the provenance the webhook stamped.
	Annotations map[string]string
	// HostNetwork pods have no pod network: poolguard leaves them alone.
	HostNetwork bool
	// Node is the node the pod is bound to ("" when it is not), and
	// NodeLabels its labels, nil when unknown.
	Node       string
	NodeLabels map[string]string
	// IPs are the pod's addresses (status.podIPs).
	IPs []netip.Addr
	// Finished pods (Succeeded or Failed) hold no address any more.
	Finished bool
}

// alwaysExcluded is the namespace the webhook configurations always leave
// out, whatever the install (the release's namespace is left out too, but
// the plugin cannot know its name).
const alwaysExcluded = "kube-system"

// unwatched says why the webhook never sees pods of the namespace, or ""
// when it does.
func unwatched(ns policy.Namespace) string {
	switch {
	case ns.Name == alwaysExcluded:
		return "namespace " + ns.Name + " is never sent to poolguard's webhook"
	case ns.Labels[policy.LabelOptOut] == "true":
		return "namespace " + ns.Name + " is opted out of poolguard (label " + policy.LabelOptOut + "=true)"
	}
	return ""
}

// recreated returns the annotations a pod would be created with again by
// the same author: the lists it named itself, without what the webhook
// added (the provenance, and lists copied from the namespace or pinned
// defaults). A pod without a valid provenance keeps what it carries.
func recreated(annotations map[string]string, frozen *policy.Frozen) map[string]string {
	out := make(map[string]string, len(annotations))
	for k, v := range annotations {
		out[k] = v
	}
	delete(out, policy.AnnotationProvenance)
	if frozen == nil {
		return out
	}
	for _, fam := range policy.Families {
		if frozen.Provenance.For(fam) != policy.SourcePod {
			delete(out, fam.AnnotationKey())
		}
	}
	return out
}
