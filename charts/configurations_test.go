package charts_test

import (
	"fmt"
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/webhook"
)

// TestWebhookConfigurationsMatchGo holds the chart's webhook configurations to
// webhook.Configurations (plus WithNamespaceOptOut): same webhooks, paths,
// rules (pods/* UPDATE included), match conditions (CEL character for
// character), namespace selectors, failure policy, side effects, timeouts and
// reinvocation. Only what the chart deliberately parameterises differs: the
// Service's name and namespace, and the caBundle, which is injected.
func TestWebhookConfigurationsMatchGo(t *testing.T) {
	cases := []struct {
		name     string
		set      []string
		excluded []string
		timeout  int32
		optOut   bool
	}{
		{name: "defaults", optOut: true},
		{name: "internal certificates, warn mode", set: []string{"certificates.mode=internal", "webhook.enforcement=warn"}, optOut: true},
		{name: "extra exclusions and timeout", set: []string{"webhook.excludedNamespaces={kube-public,monitoring}", "webhook.timeoutSeconds=10"}, excluded: []string{"kube-public", "monitoring"}, timeout: 10, optOut: true},
		{name: "no opt-out, allocator off", set: []string{"optOut.enabled=false", "allocator.enabled=false"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.set...)
			var gotM admissionregistrationv1.MutatingWebhookConfiguration
			var gotV admissionregistrationv1.ValidatingWebhookConfiguration
			decodeStrict(t, r.get(t, "MutatingWebhookConfiguration", release+"-poolguard"), &gotM)
			decodeStrict(t, r.get(t, "ValidatingWebhookConfiguration", release+"-poolguard"), &gotV)

			plugin := "system:serviceaccount:" + namespace + ":" + release + "-poolguard-cni"
			if slices.Contains(tc.set, "allocator.enabled=false") {
				plugin = ""
			}
			wantM, wantV := webhook.Configurations(webhook.ConfigOptions{
				Name:               release + "-poolguard",
				ServiceName:        release + "-poolguard-webhook",
				ServiceNamespace:   namespace,
				ExcludedNamespaces: append([]string{"kube-system", namespace}, tc.excluded...),
				TimeoutSeconds:     tc.timeout,
				NodePluginUser:     plugin,
			})
			if tc.optOut {
				webhook.WithNamespaceOptOut(wantM, wantV)
			}
			if len(gotM.Webhooks) != len(wantM.Webhooks) || len(gotV.Webhooks) != len(wantV.Webhooks) {
				t.Fatalf("chart has %d mutating and %d validating webhooks, Go has %d and %d", len(gotM.Webhooks), len(gotV.Webhooks), len(wantM.Webhooks), len(wantV.Webhooks))
			}
			for i := range wantM.Webhooks {
				if !equality.Semantic.DeepEqual(gotM.Webhooks[i], wantM.Webhooks[i]) {
					t.Errorf("mutating webhook %d differs:\n%s", i, diff(wantM.Webhooks[i], gotM.Webhooks[i]))
				}
			}
			for i := range wantV.Webhooks {
				if !equality.Semantic.DeepEqual(gotV.Webhooks[i], wantV.Webhooks[i]) {
					t.Errorf("validating webhook %d differs:\n%s", i, diff(wantV.Webhooks[i], gotV.Webhooks[i]))
				}
			}
		})
	}
}

// diff shows both sides as YAML: webhook configurations are read as YAML.
func diff(want, got any) string {
	w, _ := yaml.Marshal(want)
	g, _ := yaml.Marshal(got)
	return fmt.Sprintf("--- webhook.Configurations\n%s\n--- chart\n%s", w, g)
}
