package webhook

import (
	"bytes"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ErrMalformedPod is wrapped by every error decoding the pod of an
// AdmissionReview: the object is missing, is not a JSON object, is not a
// v1 Pod, or a field poolguard reads has the wrong type. The handlers
// answer it with a 400.
var ErrMalformedPod = errors.New("malformed pod")

// podView is what the pod handlers read of a pod, and all they read: its
// names, its annotations, whether it uses the host's network, and the node
// it is bound to at creation. Decoding only these from the AdmissionReview
// (decodePodView) rather than the whole corev1.Pod is most of what a
// request costs the handlers (BenchmarkPodHandlers); PodFreezer and
// PodValidator decide on a podView whichever way the pod came in.
type podView struct {
	Name         string
	GenerateName string
	Namespace    string
	Annotations  map[string]string
	HostNetwork  bool
	NodeName     string
}

// viewOf is a typed pod's view. It shares the pod's annotations map.
func viewOf(pod *corev1.Pod) podView {
	return podView{
		Name:         pod.Name,
		GenerateName: pod.GenerateName,
		Namespace:    pod.Namespace,
		Annotations:  pod.Annotations,
		HostNetwork:  pod.Spec.HostNetwork,
		NodeName:     pod.Spec.NodeName,
	}
}

// podGVK is the only kind a pod object may declare.
var podGVK = corev1.SchemeGroupVersion.WithKind("Pod")

var (
	keyAPIVersion = []byte("apiVersion")
	keyKind       = []byte("kind")
)

// decodePodView decodes the view of the pod in an AdmissionReview's object
// (or oldObject) as controller-runtime's decoder would have decoded the
// corev1.Pod, field for field: with the API server's case-sensitive key
// matching (a pod carrying "Annotations" beside "annotations" is read as
// the API server reads it), the same handling of duplicates and null, and
// the same check of apiVersion and kind. It is stricter in one way, which
// the API server never meets: the object must be a JSON object (the
// scheme's decoder took null for an empty pod). It does not type-check the
// fields it does not read: a forged review whose pod has, say, a string for
// spec.containers is decided on the fields poolguard reads, where the full
// decode answered 400; the API server only sends pods it decoded itself.
func decodePodView(raw []byte) (podView, error) {
	var v podView
	if len(raw) == 0 {
		return v, fmt.Errorf("%w: there is no object", ErrMalformedPod)
	}
	s := jsonScanner{data: raw}
	if s.peek() != '{' {
		if err := s.skip(0); err != nil {
			return v, fmt.Errorf("%w: %w", ErrMalformedPod, err)
		}
		return v, fmt.Errorf("%w: the object is not a JSON object", ErrMalformedPod)
	}
	// The scheme's decoder reads apiVersion and kind with encoding/json,
	// which matches keys case-insensitively, before decoding the pod.
	var apiVersion, kind string
	_, err := s.readObject("", func(key []byte) error {
		switch {
		case string(key) == "metadata":
			return v.readMetadata(&s)
		case string(key) == "spec":
			return v.readSpec(&s)
		case bytes.EqualFold(key, keyAPIVersion):
			return s.readString(&apiVersion, "apiVersion")
		case bytes.EqualFold(key, keyKind):
			return s.readString(&kind, "kind")
		}
		return s.skip(1)
	})
	if err == nil {
		err = s.end()
	}
	if err == nil {
		err = checkPodKind(apiVersion, kind)
	}
	if err != nil {
		return podView{}, fmt.Errorf("%w: %w", ErrMalformedPod, err)
	}
	return v, nil
}

// checkPodKind accepts what the scheme's decoder decodes into a
// corev1.Pod: apiVersion and kind absent or v1 and Pod (its defaults,
// k8s.io/apimachinery's gvkWithDefaults).
func checkPodKind(apiVersion, kind string) error {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return err
	}
	gvk := gv.WithKind(kind)
	if gvk.Kind == "" {
		gvk.Kind = podGVK.Kind
	}
	if gvk.Group == "" && gvk.Version == "" {
		gvk.Version = podGVK.Version
	}
	if gvk != podGVK {
		return fmt.Errorf("the object is apiVersion %q, kind %q, not a v1 Pod", apiVersion, kind)
	}
	return nil
}

// readMetadata reads the pod's metadata, merging into what an earlier
// metadata member set, as encoding/json does.
func (v *podView) readMetadata(s *jsonScanner) error {
	_, err := s.readObject("metadata", func(key []byte) error {
		switch string(key) {
		case "name":
			return s.readString(&v.Name, "metadata.name")
		case "generateName":
			return s.readString(&v.GenerateName, "metadata.generateName")
		case "namespace":
			return s.readString(&v.Namespace, "metadata.namespace")
		case "annotations":
			return v.readAnnotations(s)
		}
		return s.skip(2)
	})
	return err
}

// readAnnotations reads metadata.annotations: null clears them, an object
// adds its members to those an earlier member set, and a null value is
// the empty string, as encoding/json does.
func (v *podView) readAnnotations(s *jsonScanner) error {
	if s.peek() == '{' && v.Annotations == nil {
		v.Annotations = map[string]string{}
	}
	null, err := s.readObject("metadata.annotations", func(key []byte) error {
		k := string(key)
		var val string
		switch s.peek() {
		case '"', 'n':
			if err := s.readString(&val, ""); err != nil {
				return err
			}
		default:
			return s.typeError(fmt.Sprintf("metadata.annotations[%q]", k), "a string")
		}
		v.Annotations[k] = val
		return nil
	})
	if null {
		v.Annotations = nil
	}
	return err
}

// readSpec reads the two fields of the pod's spec that poolguard reads.
func (v *podView) readSpec(s *jsonScanner) error {
	_, err := s.readObject("spec", func(key []byte) error {
		switch string(key) {
		case "hostNetwork":
			return s.readBool(&v.HostNetwork, "spec.hostNetwork")
		case "nodeName":
			return s.readString(&v.NodeName, "spec.nodeName")
		}
		return s.skip(2)
	})
	return err
}
