package charts_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestRenderExport: the live export for firewalls: its ClusterRole grants
// get on the export lists and nothing else; the Deployment serves it
// (flags, container port), the Service names the port export, the
// NetworkPolicy opens it (to networkPolicy.exportFrom when set); a client
// CA Secret is mounted and passed; without poolguard's allocator the
// address lists are off; export.enabled=false removes every piece.
func TestRenderExport(t *testing.T) {
	r := render(t)
	var role rbacv1.ClusterRole
	decodeStrict(t, r.get(t, "ClusterRole", fullname+"-export-reader"), &role)
	var rules []string
	for _, rule := range role.Rules {
		rules = append(rules, fmt.Sprintf("%s/%s/%s/%s", strings.Join(rule.APIGroups, ","), strings.Join(rule.Resources, ","), strings.Join(rule.Verbs, ","), strings.Join(rule.ResourceNames, ",")))
	}
	if want := []string{"ipam.poolguard.dev/exports/pools,exports/namespaces/get/"}; !slices.Equal(rules, want) {
		t.Errorf("export-reader rules %q, want %q", rules, want)
	}
	assertNoWildcardsOrSecrets(t, r)

	c := deployment(t, r).Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--export-bind-address=:8444", "--export-reader-role=" + fullname + "-export-reader"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("webhook args %q lack %s", c.Args, want)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasPrefix(a, "--export-addresses") || strings.HasPrefix(a, "--export-client-ca-file")
	}) {
		t.Errorf("default args %q: the address lists are on and no client CA is set", c.Args)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "export" && p.ContainerPort == 8444 }) {
		t.Errorf("container ports %+v lack export 8444", c.Ports)
	}
	var svc corev1.Service
	decodeStrict(t, r.get(t, "Service", webhookName), &svc)
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Name == "export" && p.Port == 8444 && p.TargetPort.StrVal == "export"
	}) {
		t.Errorf("Service ports %+v lack export 8444 -> export", svc.Spec.Ports)
	}
	if rule, ok := ingressByPort(t, networkPolicy(t, r))[8444]; !ok || len(rule.From) != 0 {
		t.Errorf("NetworkPolicy: export port rule %+v (present %v), want open to anywhere by default", rule, ok)
	}

	// A client CA, a port of its own, peers, and no allocator.
	r = render(t, "export.clientCASecret=firewall-ca", "export.port=9444", "allocator.enabled=false",
		"networkPolicy.exportFrom[0].ipBlock.cidr=203.0.113.0/28")
	dep := deployment(t, r)
	c = dep.Spec.Template.Spec.Containers[0]
	for _, want := range []string{"--export-bind-address=:9444", "--export-client-ca-file=/export-client-ca/ca.crt", "--export-addresses=false"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("webhook args %q lack %s", c.Args, want)
		}
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "export-client-ca" && m.MountPath == "/export-client-ca" && m.ReadOnly
	}) {
		t.Errorf("volume mounts %+v lack the export client CA", c.VolumeMounts)
	}
	if !slices.ContainsFunc(dep.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == "export-client-ca" && v.Secret != nil && v.Secret.SecretName == "firewall-ca" && len(v.Secret.Items) == 1 && v.Secret.Items[0].Key == "ca.crt"
	}) {
		t.Errorf("volumes %+v lack the Secret firewall-ca's ca.crt", dep.Spec.Template.Spec.Volumes)
	}
	if from := ingressByPort(t, networkPolicy(t, r))[9444].From; len(from) != 1 || from[0].IPBlock == nil || from[0].IPBlock.CIDR != "203.0.113.0/28" {
		t.Errorf("NetworkPolicy: export port from %+v, want the firewalls' range", from)
	}

	// Off.
	r = render(t, "export.enabled=false", "export.clientCASecret=firewall-ca")
	if r.find("ClusterRole", fullname+"-export-reader") != nil {
		t.Error("export.enabled=false still renders the export-reader ClusterRole")
	}
	dep = deployment(t, r)
	c = dep.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--export-bind-address=0") || slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "export" }) ||
		slices.ContainsFunc(dep.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "export-client-ca" }) {
		t.Errorf("export.enabled=false: args %q, ports %+v, volumes %+v", c.Args, c.Ports, dep.Spec.Template.Spec.Volumes)
	}
	decodeStrict(t, r.get(t, "Service", webhookName), &svc)
	if slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "export" }) {
		t.Error("export.enabled=false: the Service still has the export port")
	}
	if _, ok := ingressByPort(t, networkPolicy(t, r))[8444]; ok {
		t.Error("export.enabled=false: the NetworkPolicy still opens the export port")
	}
}
