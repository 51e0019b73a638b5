package poolctl

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// templatePaths are where workloads keep the pod they create, so explain
// -f answers for a Deployment's pods as for a Pod.
var templatePaths = [][]string{
	{"spec", "template"},                        // Deployment, StatefulSet, DaemonSet, ReplicaSet, Job
	{"spec", "jobTemplate", "spec", "template"}, // CronJob
}

// ParseManifest reads a Pod manifest (YAML or JSON), or the pod template
// of a workload's, into the pod explain simulates. The namespace is the
// manifest's own ("" when it names none).
func ParseManifest(data []byte) (Pod, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return Pod{}, fmt.Errorf("%w: the manifest does not parse: %v", ErrUsage, err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if u.GetKind() == "" {
		return Pod{}, fmt.Errorf("%w: the manifest has no kind; explain -f takes a Pod or a workload with a pod template", ErrUsage)
	}
	pod := Pod{Name: u.GetName(), Namespace: u.GetNamespace()}
	meta, spec := obj["metadata"], obj["spec"]
	if u.GetKind() != "Pod" {
		tmpl, ok := findTemplate(obj)
		if !ok {
			return Pod{}, fmt.Errorf("%w: %s %q has no pod template; explain -f takes a Pod or a workload with one", ErrUsage, u.GetKind(), u.GetName())
		}
		meta, spec = tmpl["metadata"], tmpl["spec"]
		pod.Name = u.GetKind() + "/" + u.GetName()
	}
	if m, ok := meta.(map[string]any); ok {
		ann, _, err := unstructured.NestedStringMap(m, "annotations")
		if err != nil {
			return Pod{}, fmt.Errorf("%w: annotations: %v", ErrUsage, err)
		}
		pod.Annotations = ann
	}
	if s, ok := spec.(map[string]any); ok {
		pod.HostNetwork, _, _ = unstructured.NestedBool(s, "hostNetwork")
		pod.Node, _, _ = unstructured.NestedString(s, "nodeName")
	}
	return pod, nil
}

func findTemplate(obj map[string]any) (map[string]any, bool) {
	for _, path := range templatePaths {
		if t, ok, _ := unstructured.NestedMap(obj, path...); ok {
			return t, true
		}
	}
	return nil, false
}
