// Package calico_test runs poolguard's webhook in Calico mode against a
// local control plane serving Calico's IPPool, once in each of the two
// groups Calico stores it in.
package calico_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/calico"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/webhook"
)

func TestCalicoMode(t *testing.T) {
	for _, gv := range calico.PreferredVersions {
		t.Run(gv.Group, func(t *testing.T) {
			env, err := harness.Start(harness.Options{Webhook: true, Mode: webhook.ModeCalico,
				ExtraCRDDirs: []string{harness.CalicoCRDDir(gv.Group)}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := env.Stop(); err != nil {
					t.Error(err)
				}
			})
			(&world{t: t, c: env.Client, gv: gv}).run()
		})
	}
}

// world is one control plane in Calico mode.
type world struct {
	t  *testing.T
	c  client.Client
	gv schema.GroupVersion
}

// on returns the world as seen from a subtest, so that its failures stop
// the subtest, not its parent.
func (w *world) on(t *testing.T) *world {
	c := *w
	c.t = t
	return &c
}

func (w *world) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

// pool creates a Calico IPPool as Calico's users write it.
func (w *world) pool(name string, spec map[string]any) *unstructured.Unstructured {
	w.t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(w.gv.WithKind(calico.IPPoolKind))
	u.SetName(name)
	w.must(w.c.Create(context.Background(), u))
	return u
}

// edit changes a pool's spec (or status, with status true).
func (w *world) edit(name string, status bool, change func(u *unstructured.Unstructured)) {
	w.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(w.gv.WithKind(calico.IPPoolKind))
	w.must(w.c.Get(context.Background(), client.ObjectKey{Name: name}, u))
	change(u)
	if status {
		w.must(w.c.Status().Update(context.Background(), u))
		return
	}
	w.must(w.c.Update(context.Background(), u))
}

func (w *world) namespace(name string, ann map[string]string) {
	w.t.Helper()
	w.must(w.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}))
}

func newPod(ns, name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

// eventually retries until check passes or ten seconds pass: the webhook
// reads pools from an informer, a moment behind a change.
func (w *world) eventually(what string, check func() error) {
	w.t.Helper()
	var err error
	for range 200 {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Fatalf("%s: %v", what, err)
}

// created creates a dry-run pod and returns its frozen annotations.
func (w *world) created(p *corev1.Pod) (map[string]string, error) {
	err := w.c.Create(context.Background(), p, client.DryRunAll)
	return p.Annotations, err
}

func refusal(err error, parts ...string) error {
	if err == nil {
		return fmt.Errorf("admitted; want a refusal saying %q", parts)
	}
	for _, s := range parts {
		if !strings.Contains(err.Error(), s) {
			return fmt.Errorf("refused with %q; want %q", err, s)
		}
	}
	return nil
}

func (w *world) run() {
	t := w.t
	ctx := context.Background()
	v4, v6 := policy.AnnotationIPv4Pools, policy.AnnotationIPv6Pools
	w.pool("default-ipv4-ippool", map[string]any{"cidr": "198.18.0.0/16", "blockSize": int64(26), "ipipMode": "Always", "natOutgoing": true})
	w.pool("default-ipv6-ippool", map[string]any{"cidr": "2001:db8:1::/64", "blockSize": int64(122)})
	w.pool("trusted", map[string]any{"cidr": "198.51.100.0/24", "assignmentMode": "Manual", "namespaceSelector": "kubernetes.io/metadata.name == 'payments'"})
	w.pool("racked", map[string]any{"cidr": "203.0.113.0/26", "assignmentMode": "Manual", "nodeSelector": "rack == 'r1'"})
	w.pool("tunnel-only", map[string]any{"cidr": "203.0.113.64/26", "allowedUses": []any{"Tunnel"}})
	w.pool("off", map[string]any{"cidr": "203.0.113.128/26", "assignmentMode": "Manual", "disabled": true})
	w.pool("broken", map[string]any{"cidr": "203.0.113.192/27", "assignmentMode": "Manual", "namespaceSelector": "kubernetes.io/metadata.name == payments"})
	w.namespace("payments", map[string]string{v4: `["trusted"]`})
	w.namespace("web", nil)
	w.must(w.c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-r2", Labels: map[string]string{"rack": "r2"}}}))

	var early *corev1.Pod
	t.Run("defaults are frozen as an explicit list", func(t *testing.T) {
		w := w.on(t)
		// Calico reads the namespace's annotation again at every ADD for
		// a pod naming no pool: only an explicit list keeps it in place.
		w.eventually("pools not yet seen", func() error {
			p := newPod("web", "early", nil)
			ann, err := w.created(p)
			if err != nil {
				return err
			}
			if ann[v4] != `["default-ipv4-ippool"]` || ann[v6] != `["default-ipv6-ippool"]` {
				return fmt.Errorf("frozen to %v", ann)
			}
			return nil
		})
		early = newPod("web", "early", nil)
		w.must(w.c.Create(ctx, early))
		prov, err := policy.ParseProvenance(early.Annotations[policy.AnnotationProvenance])
		w.must(err)
		if prov.IPv4 != policy.SourceDefault || prov.Ranges["default-ipv4-ippool"] != "198.18.0.0/16" {
			t.Fatalf("provenance %+v", prov)
		}
	})
	t.Run("a pod frozen on the defaults keeps them when its namespace gains a default", func(t *testing.T) {
		w := w.on(t)
		w.pool("web-pool", map[string]any{"cidr": "198.19.0.0/24", "assignmentMode": "Manual"})
		w.eventually("namespace default refused", func() error {
			ns := &corev1.Namespace{}
			if err := w.c.Get(ctx, client.ObjectKey{Name: "web"}, ns); err != nil {
				return err
			}
			ns.Annotations = map[string]string{v4: `["web-pool"]`}
			return w.c.Update(ctx, ns)
		})
		var live corev1.Pod
		w.must(w.c.Get(ctx, client.ObjectKeyFromObject(early), &live))
		if live.Annotations[v4] != `["default-ipv4-ippool"]` {
			t.Fatalf("the pod Calico's CNI will read carries %q", live.Annotations[v4])
		}
		ann, err := w.created(newPod("web", "later", nil))
		w.must(err)
		if ann[v4] != `["web-pool"]` {
			t.Fatalf("a new pod is frozen to %q, not the new default", ann[v4])
		}
	})
	t.Run("namespace default of an allowed pool", func(t *testing.T) {
		w := w.on(t)
		ann, err := w.created(newPod("payments", "api", nil))
		w.must(err)
		if ann[v4] != `["trusted"]` {
			t.Fatalf("frozen to %v", ann)
		}
	})

	refused := []struct {
		name, ns string
		ann      map[string]string
		want     []string
	}{
		{"unknown pool", "web", map[string]string{v4: `["nope"]`}, []string{"nope", "does not exist"}},
		{"namespace not selected, by name", "web", map[string]string{v4: `["trusted"]`}, []string{"trusted", "does not allow namespace \"web\""}},
		{"namespace not selected, by CIDR", "web", map[string]string{v4: `["198.51.100.0/24"]`}, []string{"trusted", "does not allow namespace"}},
		{"wrong family", "web", map[string]string{v6: `["default-ipv4-ippool"]`}, []string{"is IPv4"}},
		{"allowedUses without Workload", "web", map[string]string{v4: `["tunnel-only"]`}, []string{"does not serve workloads"}},
		{"disabled", "web", map[string]string{v4: `["off"]`}, []string{"off", "disabled"}},
		{"selector that does not parse", "payments", map[string]string{v4: `["broken"]`}, []string{"broken", "does not parse"}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			w := w.on(t)
			_, err := w.created(newPod(tc.ns, "x", tc.ann))
			if err := refusal(err, tc.want...); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("refused: bound at creation to a node the pool does not select", func(t *testing.T) {
		w := w.on(t)
		p := newPod("web", "bound", map[string]string{v4: `["racked"]`})
		p.Spec.NodeName = "node-r2"
		_, err := w.created(p)
		if err := refusal(err, "racked", "does not allow the pod's node"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a pool edited at runtime takes effect for the next pod", func(t *testing.T) {
		w := w.on(t)
		w.edit("trusted", false, func(u *unstructured.Unstructured) {
			w.must(unstructured.SetNestedField(u.Object, "kubernetes.io/metadata.name in {'payments', 'web'}", "spec", "namespaceSelector"))
		})
		w.eventually("selector change", func() error {
			_, err := w.created(newPod("web", "x", map[string]string{v4: `["trusted"]`}))
			return err
		})
		w.edit("trusted", true, func(u *unstructured.Unstructured) {
			w.must(unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Disabled", "status": "True", "reason": "Test"}}, "status", "conditions"))
		})
		w.eventually("Disabled condition", func() error {
			_, err := w.created(newPod("web", "x", map[string]string{v4: `["trusted"]`}))
			return refusal(err, "disabled")
		})
		w.pool("added", map[string]any{"cidr": "198.19.1.0/24", "assignmentMode": "Manual"})
		w.eventually("pool added", func() error {
			_, err := w.created(newPod("web", "x", map[string]string{v4: `["added"]`}))
			return err
		})
	})
}
