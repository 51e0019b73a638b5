package charts_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/charts"
)

// TestSchemaRejectsMistakes: a typo or a wrong type fails the render (and so
// helm install and helm lint) with a message naming the value.
func TestSchemaRejectsMistakes(t *testing.T) {
	cases := []struct {
		set, want string
	}{
		{"webhook.replcas=2", "replcas"},
		{"webhok.replicas=2", "webhok"},
		{"webhook.replicas=two", "/webhook/replicas"},
		{"webhook.enforcement=audit", "/webhook/enforcement"},
		{"certificates.mode=self-signed", "/certificates/mode"},
		{"webhook.timeoutSeconds=31", "/webhook/timeoutSeconds"},
		{"certificates.certManager.duration=90d", "/certificates/certManager/duration"},
		{"allocator.enabled=maybe", "/allocator/enabled"},
		{"webhook.excludedNamespaces={Kube_System}", "/webhook/excludedNamespaces/0"},
		{"ippools[0].name=x", "spec"},
		{"cni.tokenExpiration=1d", "/cni/tokenExpiration"},
		{"cni.networkConfigName=10-poolguard.conf", "/cni/networkConfigName"},
		{"cni.networkConfigName=../10-poolguard.conflist", "/cni/networkConfigName"},
		{"cni.networkConfig.name=pods", "/cni/networkConfig"},                                                  // no plugins
		{"cni.networkConfig.name=pods,cni.networkConfig.plugins[0].type=bridge", "/cni/networkConfig/plugins"}, // no poolguard-ipam
		{"cni.networkConfig.plugins[0].ipam.type=poolguard-ipam", "/cni/networkConfig"},                        // a plugin without type
	}
	for _, tc := range cases {
		t.Run(tc.set, func(t *testing.T) {
			_, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Set: []string{tc.set}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("--set %s: error %v, want one mentioning %q", tc.set, err, tc.want)
			}
		})
	}
	t.Run("helm lint", func(t *testing.T) {
		if _, err := (charts.Helm{}).Run(nil, "lint", "--strict", charts.ChartDir(), "--set", "webhook.replcas=2"); err == nil || !strings.Contains(err.Error(), "replcas") {
			t.Fatalf("helm lint accepted a typo: %v", err)
		}
		if out, err := (charts.Helm{}).Run(nil, "lint", "--strict", charts.ChartDir()); err != nil {
			t.Fatalf("helm lint of the defaults: %v\n%s", err, out)
		}
	})
}

// TestEveryValueDocumented: every value in values.yaml has a "# --" comment
// and a row in the README's table, and the schema knows it.
func TestEveryValueDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(charts.ChartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(charts.ChartDir(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	schemaRaw, err := os.ReadFile(filepath.Join(charts.ChartDir(), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var values, schema map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(schemaRaw, &schema); err != nil {
		t.Fatal(err)
	}
	for _, path := range leaves(values, schema, "") {
		if !strings.Contains(string(readme), "| `"+path+"` |") {
			t.Errorf("value %s has no row in charts/poolguard/README.md", path)
		}
		if !inSchema(schema, path) {
			t.Errorf("value %s is not in values.schema.json", path)
		}
		key := path[strings.LastIndex(path, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*# -- .*(\n\s*#.*)*\n\s*` + regexp.QuoteMeta(key) + `:`).Match(raw) {
			t.Errorf("value %s has no '# --' comment in values.yaml", path)
		}
	}
}

// leaves lists the documented paths: maps the schema describes as free-form
// (labels, resources, affinity) are one value, not one per key.
func leaves(v map[string]any, schema map[string]any, prefix string) []string {
	var out []string
	for k, val := range v {
		path := strings.TrimPrefix(prefix+"."+k, ".")
		sub, isMap := val.(map[string]any)
		if isMap && len(sub) > 0 && hasProperties(schema, path) {
			out = append(out, leaves(sub, schema, path)...)
			continue
		}
		out = append(out, path)
	}
	return out
}

func schemaAt(schema map[string]any, path string) map[string]any {
	cur := schema
	for _, k := range strings.Split(path, ".") {
		props, _ := cur["properties"].(map[string]any)
		next, ok := props[k].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

func inSchema(schema map[string]any, path string) bool { return schemaAt(schema, path) != nil }

// hasProperties is true for a schema object with named properties, which
// the docs document key by key. Resources are documented as a whole.
func hasProperties(schema map[string]any, path string) bool {
	s := schemaAt(schema, path)
	_, ok := s["properties"]
	return ok && !strings.HasSuffix(path, "resources")
}
