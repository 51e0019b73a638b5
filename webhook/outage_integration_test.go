package webhook_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

// TestWebhookDown stops the webhook behind real webhook configurations and
// checks what the cluster does without it: kubelet-style status updates,
// unrelated edits, hostNetwork pods and kube-system pods go through (the API
// server filters them out with matchConditions and namespaceSelector), while
// pod creates and edits of the frozen annotations fail closed.
func TestWebhookDown(t *testing.T) {
	ctx := context.Background()
	down, err := harness.Start(harness.Options{Webhook: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := down.Stop(); err != nil {
			t.Error(err)
		}
	})
	c := down.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "outage"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	p := pod("outage", "running", nil)
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if provenance(t, p).IPv4 != policy.SourceDefault {
		t.Fatalf("pod not frozen while the webhook was up: %v", p.Annotations)
	}
	if err := down.StopWebhook(); err != nil {
		t.Fatal(err)
	}

	t.Run("status update passes", func(t *testing.T) {
		p.Status.Phase = corev1.PodRunning
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatalf("status update needed the webhook: %v", err)
		}
	})
	t.Run("unrelated metadata update passes", func(t *testing.T) {
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"tier":"web"},"annotations":{"note":"x"}}}`))
		if err := c.Patch(ctx, p, patch); err != nil {
			t.Fatalf("unrelated update needed the webhook: %v", err)
		}
	})
	t.Run("frozen annotation edit fails closed", func(t *testing.T) {
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"`+policy.AnnotationIPv4Pools+`":"[\"x\"]"}}}`))
		err := c.Patch(ctx, p, patch)
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Fatalf("edit with the webhook down: %v", err)
		}
	})
	t.Run("pod create fails closed", func(t *testing.T) {
		err := c.Create(ctx, pod("outage", "new", nil))
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Fatalf("create with the webhook down: %v", err)
		}
	})
	t.Run("hostNetwork and kube-system pods still start", func(t *testing.T) {
		hp := pod("outage", "host", nil)
		hp.Spec.HostNetwork = true
		if err := c.Create(ctx, hp); err != nil {
			t.Fatalf("hostNetwork pod needed the webhook: %v", err)
		}
		if err := c.Create(ctx, pod("kube-system", "healer", nil)); err != nil {
			t.Fatalf("kube-system pod needed the webhook: %v", err)
		}
	})
}
