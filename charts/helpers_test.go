package charts_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/charts"
)

// Names of the release the render tests use.
const (
	release   = "pg"
	namespace = "pg-system"
)

// rendered is one rendering of the chart, indexed by kind and name.
type rendered struct {
	objs []*unstructured.Unstructured
}

// render renders the chart with --set values and fails the test on error.
func render(t *testing.T, set ...string) rendered {
	t.Helper()
	out, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Set: set})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := charts.Decode(out)
	if err != nil {
		t.Fatalf("rendered YAML does not parse: %v", err)
	}
	return rendered{objs: objs}
}

// find returns the object of kind and name, or nil.
func (r rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// get returns the object of kind and name, failing the test without it.
func (r rendered) get(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := r.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %q rendered; have %v", kind, name, r.names())
	}
	return o
}

// kinds returns the names of the objects of kind.
func (r rendered) kinds(kind string) []string {
	var out []string
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o.GetName())
		}
	}
	return out
}

func (r rendered) names() []string {
	var out []string
	for _, o := range r.objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// decodeStrict converts an object into a typed one, failing on any field
// the type does not know: a misspelt field in a template fails here instead
// of being silently dropped by the API server.
func decodeStrict(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	b, err := json.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s %s does not decode strictly into %T: %v", o.GetKind(), o.GetName(), into, err)
	}
}

// flagsOf returns a container's args as flag name -> value.
func flagsOf(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out[k] = v
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// pluginIPAM returns the ipam section of the one plugin of the rendered
// node network configuration (networkConfigSet), as the installer writes
// it to the nodes.
func pluginIPAM(t *testing.T, r rendered) map[string]any {
	t.Helper()
	var cm corev1.ConfigMap
	decodeStrict(t, r.get(t, "ConfigMap", cniConfigMap), &cm)
	var conf struct {
		Plugins []struct {
			IPAM map[string]any `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(cm.Data["10-poolguard.conflist"]), &conf); err != nil || len(conf.Plugins) != 1 {
		t.Fatalf("network configuration %q: %v", cm.Data, err)
	}
	return conf.Plugins[0].IPAM
}
