package charts_test

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"poolguard.dev/poolguard/charts"
)

// TestRenderClientAuth: with a CA ConfigMap the webhook requires the API
// server's client certificate, read from the whole ConfigMap mounted (so
// the kubelet updates it on rotation); without one nothing is mounted or
// passed.
func TestRenderClientAuth(t *testing.T) {
	c := deployment(t, render(t)).Spec.Template.Spec
	for _, a := range c.Containers[0].Args {
		if strings.HasPrefix(a, "--client-") {
			t.Errorf("client auth flag %s passed by default", a)
		}
	}
	if len(c.Volumes) != 1 {
		t.Errorf("volumes by default: %+v", c.Volumes)
	}

	pod := deployment(t, render(t, "webhook.clientAuth.caConfigMap=apiserver-client-ca", "webhook.clientAuth.caKey=bundle.pem",
		"webhook.clientAuth.allowedNames={kube-apiserver,apiserver.example}")).Spec.Template.Spec
	ctr := pod.Containers[0]
	flags := flagsOf(ctr.Args)
	var vol *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == "client-ca" {
			vol = &pod.Volumes[i]
		}
	}
	if vol == nil || vol.ConfigMap == nil || vol.ConfigMap.Name != "apiserver-client-ca" || len(vol.ConfigMap.Items) != 0 {
		t.Fatalf("client CA volume = %+v, want the whole ConfigMap apiserver-client-ca", vol)
	}
	var mount *corev1.VolumeMount
	for i := range ctr.VolumeMounts {
		if ctr.VolumeMounts[i].Name == "client-ca" {
			mount = &ctr.VolumeMounts[i]
		}
	}
	if mount == nil || !mount.ReadOnly || mount.SubPath != "" {
		t.Fatalf("client CA mount = %+v, want read-only, no subPath (a subPath is never updated)", mount)
	}
	if want := mount.MountPath + "/bundle.pem"; flags["client-ca-file"] != want {
		t.Errorf("--client-ca-file = %q, want %q", flags["client-ca-file"], want)
	}
	if flags["client-allowed-names"] != "kube-apiserver,apiserver.example" {
		t.Errorf("--client-allowed-names = %q", flags["client-allowed-names"])
	}
}

// TestRenderMetricsAuth: metrics are served securely, the webhook may ask
// the API server who a scraper is and what it may do, and scrapers get a
// ClusterRole that grants reading /metrics and nothing else.
func TestRenderMetricsAuth(t *testing.T) {
	for _, set := range [][]string{nil, {"certificates.mode=internal", "allocator.enabled=false"}} {
		r := render(t, set...)
		if got := flagsOf(deployment(t, r).Spec.Template.Spec.Containers[0].Args)["metrics-secure"]; got != "true" {
			t.Errorf("%v: --metrics-secure = %q, want true", set, got)
		}
		assertVerbs(t, r, "ClusterRole", webhookName, "authentication.k8s.io", "tokenreviews", "create")
		assertVerbs(t, r, "ClusterRole", webhookName, "authorization.k8s.io", "subjectaccessreviews", "create")
		var reader rbacv1.ClusterRole
		decodeStrict(t, r.get(t, "ClusterRole", fullname+"-metrics-reader"), &reader)
		want := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
		if !slices.EqualFunc(reader.Rules, want, func(a, b rbacv1.PolicyRule) bool {
			return slices.Equal(a.NonResourceURLs, b.NonResourceURLs) && slices.Equal(a.Verbs, b.Verbs) && len(a.Resources)+len(a.APIGroups) == 0
		}) {
			t.Errorf("%v: metrics-reader rules = %+v, want %+v", set, reader.Rules, want)
		}
		assertNoWildcardsOrSecrets(t, r)
	}
}

// TestSchemaRejectsAccessMistakes: the new values are as strict as the rest.
func TestSchemaRejectsAccessMistakes(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"webhook.clientAuth.caConfgMap=x", "caConfgMap"},
		{"webhook.clientAuth.caConfigMap=Not_A_Name", "/webhook/clientAuth/caConfigMap"},
		{"webhook.clientAuth.allowedNames={a b}", "/webhook/clientAuth/allowedNames/0"},
		{"networkPolicy.enabled=yes", "/networkPolicy/enabled"},
		{"networkPolicy.webhookFrom[0].ipBlok.cidr=10.0.0.0/8", "ipBlok"},
		{"networkPolicy.metricsFrom[0].ipBlock.except[0]=10.0.0.0/8", "cidr"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			_, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Set: []string{tc.set}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("--set %s: error %v, want one mentioning %q", tc.set, err, tc.want)
			}
		})
	}
}
