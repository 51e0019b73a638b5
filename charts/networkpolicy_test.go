package charts_test

import (
	"maps"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ingressByPort returns the NetworkPolicy's ingress rules by the one port
// each names.
func ingressByPort(t *testing.T, np *networkingv1.NetworkPolicy) map[int]networkingv1.NetworkPolicyIngressRule {
	t.Helper()
	out := map[int]networkingv1.NetworkPolicyIngressRule{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) != 1 || rule.Ports[0].Port == nil || rule.Ports[0].Port.Type != intstr.Int {
			t.Fatalf("ingress rule %+v does not name exactly one numeric port", rule)
		}
		out[rule.Ports[0].Port.IntValue()] = rule
	}
	return out
}

func networkPolicy(t *testing.T, r rendered) *networkingv1.NetworkPolicy {
	t.Helper()
	var np networkingv1.NetworkPolicy
	decodeStrict(t, r.get(t, "NetworkPolicy", webhookName), &np)
	return &np
}

// TestRenderNetworkPolicyDefaults: by default the webhook pods accept
// connections only on their four ports: the webhook port, the export and the probes
// from anywhere (the API server's and the kubelet's addresses differ per
// cluster), metrics from pods of the cluster only. Egress stays open.
func TestRenderNetworkPolicyDefaults(t *testing.T) {
	r := render(t)
	np := networkPolicy(t, r)
	dep := deployment(t, r)
	if got, want := np.Spec.PodSelector.MatchLabels, dep.Spec.Selector.MatchLabels; !maps.Equal(got, want) {
		t.Errorf("podSelector %v does not select the webhook pods %v", got, want)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes = %v, want [Ingress] only: egress to the API server must stay open", np.Spec.PolicyTypes)
	}
	rules := ingressByPort(t, np)
	ports := map[string]int{}
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = int(p.ContainerPort)
	}
	if len(rules) != 4 || len(ports) != 4 {
		t.Fatalf("ingress ports %v, container ports %v: want exactly webhook, metrics, health and export", rules, ports)
	}
	// The export too: firewalls poll from outside the cluster
	// (networkPolicy.exportFrom narrows it; TestRenderExport).
	for _, name := range []string{"webhook", "health", "export"} {
		rule, ok := rules[ports[name]]
		if !ok || len(rule.From) != 0 {
			t.Errorf("%s port %d: rule %+v, want open to anywhere", name, ports[name], rule)
		}
	}
	metrics, ok := rules[ports["metrics"]]
	if !ok || len(metrics.From) != 1 || metrics.From[0].NamespaceSelector == nil || len(metrics.From[0].NamespaceSelector.MatchLabels)+len(metrics.From[0].NamespaceSelector.MatchExpressions) != 0 ||
		metrics.From[0].PodSelector != nil || metrics.From[0].IPBlock != nil {
		t.Errorf("metrics port: from %+v, want every pod of the cluster ({namespaceSelector: {}})", metrics.From)
	}
}

// TestRenderNetworkPolicyRestricted: the peers from values land on their
// port, and the ports follow the container's.
func TestRenderNetworkPolicyRestricted(t *testing.T) {
	r := render(t,
		"webhook.port=10250", "webhook.metricsPort=9090", "webhook.healthPort=9091",
		"networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24",
		"networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
	)
	rules := ingressByPort(t, networkPolicy(t, r))
	if from := rules[10250].From; len(from) != 1 || from[0].IPBlock == nil || from[0].IPBlock.CIDR != "10.0.0.0/24" {
		t.Errorf("webhook port from %+v, want the control-plane range", from)
	}
	if from := rules[9090].From; len(from) != 1 || from[0].NamespaceSelector == nil || from[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("metrics port from %+v, want the monitoring namespace", from)
	}
	if rule, ok := rules[9091]; !ok || len(rule.From) != 0 {
		t.Errorf("health port rule %+v, want open to anywhere (kubelet probes)", rule)
	}
}

func TestRenderNetworkPolicyDisabled(t *testing.T) {
	if r := render(t, "networkPolicy.enabled=false"); r.find("NetworkPolicy", webhookName) != nil {
		t.Fatal("NetworkPolicy rendered with networkPolicy.enabled=false")
	}
}
