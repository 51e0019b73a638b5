package webhook_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/policy"
)

// TestNamespaceDefaults: a namespace owner's default is checked when it is
// set, and a label change that would make the default forbidden is refused.
func TestNamespaceDefaults(t *testing.T) {
	ctx := context.Background()
	c, warns := newClient(t)
	nsName := uniq(t, "ns")
	team := uniq(t, "team")
	off := uniq(t, "off")
	v6 := uniq(t, "v6")
	tp := makePool(t, team, "198.18.200.0/24", true)
	tp.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "blue"}}
	if err := env.Client.Update(ctx, tp); err != nil {
		t.Fatal(err)
	}
	op := makePool(t, off, "198.18.201.0/24", false)
	op.Spec.Disabled = true
	if err := env.Client.Update(ctx, op); err != nil {
		t.Fatal(err)
	}
	makePool(t, v6, "2001:db8:3::/48", false)

	t.Run("create with a forbidden default is refused", func(t *testing.T) {
		err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName + "-x",
			Annotations: map[string]string{policy.AnnotationIPv4Pools: `["` + team + `"]`}}})
		for i := 0; err == nil && i < 100; i++ { // the selector update may still be on its way to the cache
			_ = env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName + "-x"}})
			sleep()
			err = c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName + "-x",
				Annotations: map[string]string{policy.AnnotationIPv4Pools: `["` + team + `"]`}}})
		}
		mustContain(t, err, policy.AnnotationIPv4Pools, team, "does not allow namespace")
	})

	t.Run("create with unknown, wrong-family and malformed defaults is refused", func(t *testing.T) {
		for value, want := range map[string]string{
			`["nope"]`:        "does not exist",
			`["` + v6 + `"]`:  "is IPv6",
			`nope`:            "JSON list",
			`["a", "b", "a"]`: "listed twice",
		} {
			err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName + "-bad",
				Annotations: map[string]string{policy.AnnotationIPv4Pools: value}}})
			mustContain(t, err, want)
		}
	})

	t.Run("a disabled pool is a warning for a namespace", func(t *testing.T) {
		warns.Take()
		ns := makeNamespace(t, c, nsName+"-off", map[string]string{policy.AnnotationIPv4Pools: `["` + off + `"]`})
		if w := strings.Join(warns.Take(), "\n"); !strings.Contains(w, "disabled") {
			t.Fatalf("no warning for the disabled pool; warnings %q", w)
		}
		// ... but its pods are refused.
		mustContain(t, c.Create(ctx, pod(ns.Name, "p", nil)), "disabled", "copied from namespace")
	})

	t.Run("labels decide, and a label change that breaks the default is refused", func(t *testing.T) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName + "-blue",
			Labels:      map[string]string{"team": "blue"},
			Annotations: map[string]string{policy.AnnotationIPv4Pools: `["` + team + `"]`}}}
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, ns) })
		ns.Labels["team"] = "red"
		mustContain(t, c.Update(ctx, ns), "does not allow namespace")
	})
}
