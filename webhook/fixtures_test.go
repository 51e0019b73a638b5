package webhook_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

// newClient returns a client whose warnings the test can read.
func newClient(t *testing.T) (client.Client, *harness.WarningRecorder) {
	t.Helper()
	w := &harness.WarningRecorder{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

// uniq makes a DNS-label name unique per test, so tests share one control
// plane without colliding: a readable prefix and a hash of the test's name.
func uniq(t *testing.T, base string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(t.Name()))
	return fmt.Sprintf("%s-%08x", base, h.Sum32())
}

func makeNamespace(t *testing.T, c client.Client, name string, annotations map[string]string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	return ns
}

// makePool creates an IPPool; a nil namespace list allows every namespace.
func makePool(t *testing.T, name, cidr string, manual bool, namespaces ...string) *v1alpha1.IPPool {
	t.Helper()
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPPoolSpec{CIDR: cidr}}
	if manual {
		p.Spec.AssignmentMode = v1alpha1.AssignmentManual
	}
	if len(namespaces) > 0 {
		p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: policy.LabelNamespaceName, Operator: metav1.LabelSelectorOpIn, Values: namespaces,
		}}}
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("creating IPPool %s: %v", name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	waitPoolCached(t, name)
	return p
}

// waitPoolCached waits until the webhook's informer has the pool: a
// namespace naming it is validated against that cache. It probes with a
// server-side dry-run namespace create, which is exactly what a user does.
func waitPoolCached(t *testing.T, name string) {
	t.Helper()
	probe := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        "probe-" + name,
		Annotations: map[string]string{policy.AnnotationIPv4Pools: `["` + name + `"]`, policy.AnnotationIPv6Pools: `["` + name + `"]`},
	}}
	for i := 0; i < 200; i++ {
		err := env.Client.Create(context.Background(), probe.DeepCopy(), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			return
		}
		sleep()
	}
	t.Fatalf("IPPool %s never reached the webhook's cache", name)
}

func pod(ns, name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

func provenance(t *testing.T, p *corev1.Pod) policy.Provenance {
	t.Helper()
	v, ok := p.Annotations[policy.AnnotationProvenance]
	if !ok {
		t.Fatalf("pod %s has no %s annotation: %v", p.Name, policy.AnnotationProvenance, p.Annotations)
	}
	prov, err := policy.ParseProvenance(v)
	if err != nil {
		t.Fatal(err)
	}
	return prov
}

func mustContain(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got none", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

func sleep() { time.Sleep(50 * time.Millisecond) }
