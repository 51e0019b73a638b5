package policy

// IsThePod reports whether a pod object (its UID and annotations) is the
// pod a runtime named by uid when it asked for addresses. A static pod is
// known to the runtime by its own UID, and to the API by its mirror pod,
// which has another UID and carries the static one in AnnotationMirrorPod:
// both match. An empty uid (a runtime that passed none) matches any pod of
// that name. Every place that matches a pod to an allocation uses it, so
// a static pod neither fails ADD nor has its live address freed by the
// garbage collector.
func IsThePod(podUID string, annotations map[string]string, uid string) bool {
	return uid == "" || podUID == uid || annotations[AnnotationMirrorPod] == uid
}
