package calico

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/calico/selector"
)

func pool(name string, spec map[string]any, status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	if status != nil {
		u.Object["status"] = status
	}
	u.SetName(name)
	return u
}

func TestFromUnstructured(t *testing.T) {
	payments := labels.Set{"kubernetes.io/metadata.name": "payments"}
	shop := labels.Set{"kubernetes.io/metadata.name": "shop"}
	cases := []struct {
		name  string
		u     *unstructured.Unstructured
		check func(t *testing.T, p policy.Pool)
	}{
		{"defaults: enabled, Automatic, every namespace and node, for workloads",
			pool("default-ipv4-ippool", map[string]any{"cidr": "198.18.0.0/16", "blockSize": int64(26), "ipipMode": "Always", "natOutgoing": true}, nil),
			func(t *testing.T, p policy.Pool) {
				if !p.Usable() || p.Manual || p.NamespaceSelector != nil || p.NodeSelector != nil || p.CIDR.String() != "198.18.0.0/16" {
					t.Fatalf("%+v", p)
				}
			}},
		{"all() is every namespace and node",
			pool("a", map[string]any{"cidr": "2001:db8::/64", "nodeSelector": "all()", "namespaceSelector": "all()"}, nil),
			func(t *testing.T, p policy.Pool) {
				if p.NamespaceSelector != nil || p.NodeSelector != nil || p.Family() != policy.IPv6 {
					t.Fatalf("%+v", p)
				}
			}},
		{"Manual, disabled field",
			pool("b", map[string]any{"cidr": "198.51.100.0/24", "assignmentMode": "Manual", "disabled": true}, nil),
			func(t *testing.T, p policy.Pool) {
				if !p.Manual || !p.Disabled || p.Usable() {
					t.Fatalf("%+v", p)
				}
			}},
		{"Disabled status condition (v3.32)",
			pool("c", map[string]any{"cidr": "198.51.100.0/24"}, map[string]any{"conditions": []any{map[string]any{"type": "Disabled", "status": "True"}}}),
			func(t *testing.T, p policy.Pool) {
				if !p.Disabled {
					t.Fatalf("%+v", p)
				}
			}},
		{"allowedUses without Workload",
			pool("d", map[string]any{"cidr": "198.51.100.0/24", "allowedUses": []any{"Tunnel"}}, nil),
			func(t *testing.T, p policy.Pool) {
				if !p.NotForWorkloads {
					t.Fatalf("%+v", p)
				}
			}},
		{"allowedUses with Workload",
			pool("e", map[string]any{"cidr": "198.51.100.0/24", "allowedUses": []any{"Workload", "Tunnel"}}, nil),
			func(t *testing.T, p policy.Pool) {
				if p.NotForWorkloads {
					t.Fatalf("%+v", p)
				}
			}},
		{"namespaceSelector in Calico's language",
			pool("f", map[string]any{"cidr": "198.51.100.0/24", "namespaceSelector": "kubernetes.io/metadata.name in {'payments'}"}, nil),
			func(t *testing.T, p policy.Pool) {
				if !p.AllowsNamespace(payments) || p.AllowsNamespace(shop) {
					t.Fatalf("selector %v", p.NamespaceSelector)
				}
			}},
		{"a selector that does not parse makes the pool unusable, never match-all",
			pool("g", map[string]any{"cidr": "198.51.100.0/24", "namespaceSelector": "kubernetes.io/metadata.name == payments"}, nil),
			func(t *testing.T, p policy.Pool) {
				if p.Invalid == nil || !errors.Is(p.Invalid, selector.ErrInvalid) || p.Usable() || p.AllowsNamespace(payments) {
					t.Fatalf("%+v", p)
				}
			}},
		{"the namespace rule as an annotation, for Calico before v3.31",
			func() *unstructured.Unstructured {
				u := pool("i", map[string]any{"cidr": "198.51.100.0/24"}, nil)
				u.SetAnnotations(map[string]string{policy.AnnotationNamespaceSelector: "kubernetes.io/metadata.name == 'payments'"})
				return u
			}(),
			func(t *testing.T, p policy.Pool) {
				if !p.AllowsNamespace(payments) || p.AllowsNamespace(shop) {
					t.Fatalf("selector %v", p.NamespaceSelector)
				}
			}},
		{"spec.namespaceSelector wins over the annotation",
			func() *unstructured.Unstructured {
				u := pool("j", map[string]any{"cidr": "198.51.100.0/24", "namespaceSelector": "kubernetes.io/metadata.name == 'shop'"}, nil)
				u.SetAnnotations(map[string]string{policy.AnnotationNamespaceSelector: "all()"})
				return u
			}(),
			func(t *testing.T, p policy.Pool) {
				if p.AllowsNamespace(payments) || !p.AllowsNamespace(shop) {
					t.Fatalf("selector %v", p.NamespaceSelector)
				}
			}},
		{"host bits masked as Calico does",
			pool("h", map[string]any{"cidr": "198.51.100.7/24"}, nil),
			func(t *testing.T, p policy.Pool) {
				if p.CIDR.String() != "198.51.100.0/24" {
					t.Fatalf("%v", p.CIDR)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := FromUnstructured(tc.u)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
	if _, err := FromUnstructured(pool("bad", map[string]any{"cidr": "nope"}, nil)); err == nil {
		t.Fatal("a pool without a CIDR converted")
	}
}

// TestInvalidPoolRefusedByPolicy: a pod naming a pool whose selector does
// not parse is refused with the parse error; a namespace default gets a
// warning.
func TestInvalidPoolRefusedByPolicy(t *testing.T) {
	p, err := FromUnstructured(pool("broken", map[string]any{"cidr": "198.51.100.0/24", "namespaceSelector": "has(("}, nil))
	if err != nil {
		t.Fatal(err)
	}
	ix := policy.NewIndex([]policy.Pool{p})
	vs := policy.CheckList(policy.IPv4, `["broken"]`, policy.Subject{Namespace: policy.Namespace{Name: "payments"}}, ix)
	if len(vs) != 1 || !errors.Is(vs[0], policy.ErrInvalidPool) || vs[0].Warning {
		t.Fatalf("pod: %+v", vs)
	}
	ns := policy.Namespace{Name: "payments", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["broken"]`}}
	if deny, warn := policy.Split(policy.CheckNamespace(ns, ix)); len(deny) != 0 || len(warn) != 1 {
		t.Fatalf("namespace: deny %v warn %v", deny, warn)
	}
	if got := ix.Defaults(policy.IPv4, nil); len(got) != 0 {
		t.Fatalf("an unusable pool is a default: %v", got)
	}
}
