package charts_test

import (
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

const (
	fullname    = release + "-poolguard"
	webhookName = fullname + "-webhook"
	cniName     = fullname + "-cni"
	// cniInstallerName is the installer DaemonSet's own identity.
	cniInstallerName = fullname + "-cni-installer"
	tlsSecret        = fullname + "-webhook-tls"
)

// TestRenderDefaults asserts what a default install must be: HA, restricted,
// failing closed for pods, cert-manager wired to the webhook configurations,
// the allocator's pieces present, least-privilege RBAC.
func TestRenderDefaults(t *testing.T) {
	r := render(t)

	dep := deployment(t, r)
	if *dep.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want 3", *dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if pod.PriorityClassName != "system-cluster-critical" {
		t.Errorf("priorityClassName = %q", pod.PriorityClassName)
	}
	if len(pod.TopologySpreadConstraints) == 0 || pod.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" || pod.TopologySpreadConstraints[0].WhenUnsatisfiable != corev1.DoNotSchedule {
		t.Errorf("webhook replicas are not spread one per node: %+v", pod.TopologySpreadConstraints)
	}
	c := pod.Containers[0]
	assertRestricted(t, "webhook", pod.SecurityContext, c)
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("no resource requests: %+v", c.Resources)
	}
	flags := flagsOf(c.Args)
	for k, want := range map[string]string{"enforcement": "enforce", "leader-elect": "true", "cert-dir": "/certs", "webhook-port": "9443",
		"allocator-controllers": "true", "gc-grace-period": "5m", "gc-interval": "1m"} {
		if flags[k] != want {
			t.Errorf("--%s = %q, want %q (args %v)", k, flags[k], want, c.Args)
		}
	}
	if _, ok := flags["cert-secret"]; ok {
		t.Errorf("internal certificate rotator enabled under cert-manager: %v", c.Args)
	}
	if v := pod.Volumes[0]; v.Secret == nil || v.Secret.SecretName != tlsSecret {
		t.Errorf("certificate volume = %+v, want cert-manager's Secret %s", v, tlsSecret)
	}

	var pdb policyv1.PodDisruptionBudget
	decodeStrict(t, r.get(t, "PodDisruptionBudget", webhookName), &pdb)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "webhook" {
		t.Errorf("PDB = %+v", pdb.Spec)
	}

	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		o := r.get(t, kind, fullname)
		if got := o.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != namespace+"/"+webhookName {
			t.Errorf("%s inject-ca-from = %q, want %s/%s (the serving Certificate)", kind, got, namespace, webhookName)
		}
	}
	assertPodWebhooksFailClosed(t, r)

	if r.find("DaemonSet", cniName) == nil {
		t.Errorf("no CNI installer DaemonSet with the allocator on")
	}
	// Least privilege, per identity.
	assertVerbs(t, r, "ClusterRole", cniName, "", "pods", "get")
	assertVerbs(t, r, "ClusterRole", cniName, "", "namespaces", "get")
	assertVerbs(t, r, "ClusterRole", cniName, "", "nodes", "get")
	assertVerbs(t, r, "ClusterRole", cniName, "", "secrets")
	// update only to add the allocations finalizer: see the policy below.
	assertVerbs(t, r, "ClusterRole", cniName, "ipam.poolguard.dev", "ippools", "get", "list", "update", "watch")
	assertVerbs(t, r, "ClusterRole", cniName, "ipam.poolguard.dev", "ippools/status")
	if got := bindingActions(t, r, fullname+"-node-plugin-pools"); !slices.Equal(got, []string{"Deny"}) {
		t.Errorf("node plugin's IPPool policy: validationActions = %v, want [Deny]", got)
	}
	assertVerbs(t, r, "ClusterRole", cniName, "ipam.poolguard.dev", "ipamblocks", "create", "delete", "get", "list", "patch", "update", "watch")
	assertCNIInstallerRBAC(t, r)
	assertVerbs(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools", "get", "list", "patch", "update", "watch")
	assertVerbs(t, r, "ClusterRole", webhookName, "", "namespaces", "get", "list", "watch")
	assertVerbs(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools/status", "get", "patch", "update")
	assertVerbs(t, r, "Role", webhookName, "", "secrets")
	assertVerbs(t, r, "ClusterRole", webhookName, "admissionregistration.k8s.io", "mutatingwebhookconfigurations")
	assertVerbs(t, r, "ClusterRole", fullname+"-namespace-opt-out", "ipam.poolguard.dev", "namespaces", "opt-out")
	assertNoWildcardsOrSecrets(t, r)

	for _, name := range []string{fullname + "-frozen-pools", fullname + "-namespace-opt-out"} {
		if got := bindingActions(t, r, name); !slices.Equal(got, []string{"Deny"}) {
			t.Errorf("binding %s validationActions = %v, want [Deny]", name, got)
		}
	}
}

// TestRenderInternalCertificates: without cert-manager nothing of
// cert-manager's is rendered, the webhook runs its rotator and may touch only
// its own Secret and its own two webhook configurations.
func TestRenderInternalCertificates(t *testing.T) {
	r := render(t, "certificates.mode=internal")
	for _, kind := range []string{"Issuer", "Certificate"} {
		if names := r.kinds(kind); len(names) > 0 {
			t.Errorf("%s rendered without cert-manager: %v", kind, names)
		}
	}
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if a, ok := r.get(t, kind, fullname).GetAnnotations()["cert-manager.io/inject-ca-from"]; ok {
			t.Errorf("%s still asks cert-manager for its CA: %q", kind, a)
		}
	}
	c := deployment(t, r).Spec.Template.Spec
	flags := flagsOf(c.Containers[0].Args)
	for k, want := range map[string]string{"cert-secret": tlsSecret, "cert-service": webhookName, "cert-webhook-configuration": fullname, "cert-ca-validity": "87600h", "cert-validity": "2160h"} {
		if flags[k] != want {
			t.Errorf("--%s = %q, want %q", k, flags[k], want)
		}
	}
	if v := c.Volumes[0]; v.EmptyDir == nil {
		t.Errorf("certificate volume = %+v, want an emptyDir the rotator writes", v)
	}
	assertVerbs(t, r, "Role", webhookName, "", "secrets", "create", "get", "update")
	rules := rulesFor(t, r, "Role", webhookName, "", "secrets")
	for _, rule := range rules {
		if slices.Contains(rule.Verbs, "get") && !slices.Equal(rule.ResourceNames, []string{tlsSecret}) {
			t.Errorf("webhook may read Secrets other than %s: %+v", tlsSecret, rule)
		}
	}
	assertVerbs(t, r, "ClusterRole", webhookName, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "get", "patch", "update")
	for _, rule := range rulesFor(t, r, "ClusterRole", webhookName, "admissionregistration.k8s.io", "validatingwebhookconfigurations") {
		if !slices.Equal(rule.ResourceNames, []string{fullname}) {
			t.Errorf("webhook may change webhook configurations other than its own: %+v", rule)
		}
	}
	assertPodWebhooksFailClosed(t, r)
	assertNoWildcardsOrSecrets(t, r)
}

// TestRenderWarnMode: nothing denies on pool rules, but the opt-out guard
// (a privilege boundary) still does.
func TestRenderWarnMode(t *testing.T) {
	r := render(t, "webhook.enforcement=warn")
	if got := flagsOf(deployment(t, r).Spec.Template.Spec.Containers[0].Args)["enforcement"]; got != "warn" {
		t.Errorf("--enforcement = %q, want warn", got)
	}
	if got := bindingActions(t, r, fullname+"-frozen-pools"); !slices.Equal(got, []string{"Warn", "Audit"}) {
		t.Errorf("immutability policy in warn mode: validationActions = %v, want [Warn Audit]", got)
	}
	if got := bindingActions(t, r, fullname+"-namespace-opt-out"); !slices.Equal(got, []string{"Deny"}) {
		t.Errorf("opt-out guard in warn mode: validationActions = %v, want [Deny]", got)
	}
	// Warn mode is the webhook's answer, not the API server's: a webhook
	// that is down must still fail closed.
	assertPodWebhooksFailClosed(t, r)
}

// TestRenderAllocatorOff is Calico mode: the webhook alone.
func TestRenderAllocatorOff(t *testing.T) {
	r := render(t, append([]string{"allocator.enabled=false"}, networkConfigSet...)...)
	for _, kind := range []string{"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		if r.find(kind, cniName) != nil {
			t.Errorf("%s %s rendered with the allocator off", kind, cniName)
		}
	}
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
		if r.find(kind, cniInstallerName) != nil {
			t.Errorf("%s %s rendered with the allocator off", kind, cniInstallerName)
		}
	}
	if r.find("ConfigMap", cniConfigMap) != nil {
		t.Errorf("network configuration rendered with the allocator off")
	}
	if r.find("ValidatingAdmissionPolicy", fullname+"-node-plugin-pools") != nil {
		t.Errorf("node plugin policy rendered with the allocator off")
	}
	for _, f := range []string{"allocator-controllers", "gc-grace-period", "gc-interval"} {
		if _, ok := flagsOf(deployment(t, r).Spec.Template.Spec.Containers[0].Args)[f]; ok {
			t.Errorf("--%s passed with the allocator off", f)
		}
	}
	assertVerbs(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools", "get", "list", "watch")
	assertVerbs(t, r, "ClusterRole", webhookName, "", "pods")
	assertVerbs(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ipamblocks")
	assertPodWebhooksFailClosed(t, r)
}

// TestRenderSingleReplicaHasNoPDB: a PDB over one replica would block every
// node drain.
func TestRenderSingleReplicaHasNoPDB(t *testing.T) {
	if r := render(t, "webhook.replicas=1"); r.find("PodDisruptionBudget", webhookName) != nil {
		t.Fatal("PDB rendered for a single replica")
	}
}

// TestRenderCNIInstaller: copies the plugin and its kubeconfig into host
// paths, with nothing of the host beyond them; runs as its own identity and
// requests node-bound tokens of the plugin's; writes no network
// configuration by default.
func TestRenderCNIInstaller(t *testing.T) {
	r := render(t, "cni.binDir=/usr/libexec/cni", "cni.apiServer=https://api.example:6443")
	var ds appsv1.DaemonSet
	decodeStrict(t, r.get(t, "DaemonSet", cniName), &ds)
	pod := ds.Spec.Template.Spec
	if pod.ServiceAccountName != cniInstallerName {
		t.Errorf("installer runs as %q, want %q (its own identity, not the plugin's)", pod.ServiceAccountName, cniInstallerName)
	}
	paths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a host path", v.Name)
			continue
		}
		paths[v.Name] = v.HostPath.Path
	}
	if paths["cni-bin"] != "/usr/libexec/cni" || paths["cni-kubeconfig"] != "/etc/cni/net.d/poolguard" || len(paths) != 2 {
		t.Errorf("host paths = %v", paths)
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("installer security context = %+v", sc)
	}
	flags := flagsOf(c.Args)
	if flags["server"] != "https://api.example:6443" || !strings.HasPrefix(flags["kubeconfig"], "/host/cni/net.d/poolguard/") || flags["bin-dir"] != "/host/cni/bin" {
		t.Errorf("installer args = %v", c.Args)
	}
	assertNodeBoundTokenArgs(t, c)
	assertNoNetworkConfig(t, r, c)
	if tol := pod.Tolerations; len(tol) != 1 || tol[0].Operator != corev1.TolerationOpExists {
		t.Errorf("installer does not tolerate every taint: %+v", tol)
	}
}

func deployment(t *testing.T, r rendered) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	decodeStrict(t, r.get(t, "Deployment", webhookName), &d)
	return &d
}

// assertRestricted checks the Pod Security "restricted" level's demands.
func assertRestricted(t *testing.T, what string, pod *corev1.PodSecurityContext, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s pod security context not restricted: %+v", what, pod)
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s container security context not restricted: %+v", what, sc)
	}
}

// assertPodWebhooksFailClosed: every pod webhook fails closed and declares
// no side effects; the kubelet's status updates are filtered in the API
// server.
func assertPodWebhooksFailClosed(t *testing.T, r rendered) {
	t.Helper()
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	decodeStrict(t, r.get(t, "MutatingWebhookConfiguration", fullname), &m)
	decodeStrict(t, r.get(t, "ValidatingWebhookConfiguration", fullname), &v)
	type hook struct {
		name  string
		fp    *admissionregistrationv1.FailurePolicyType
		se    *admissionregistrationv1.SideEffectClass
		ns    bool
		conds []admissionregistrationv1.MatchCondition
	}
	var hooks []hook
	for _, w := range m.Webhooks {
		hooks = append(hooks, hook{w.Name, w.FailurePolicy, w.SideEffects, w.NamespaceSelector != nil, w.MatchConditions})
	}
	for _, w := range v.Webhooks {
		hooks = append(hooks, hook{w.Name, w.FailurePolicy, w.SideEffects, w.NamespaceSelector != nil, w.MatchConditions})
	}
	for _, h := range hooks {
		if h.fp == nil || *h.fp != admissionregistrationv1.Fail || h.se == nil || *h.se != admissionregistrationv1.SideEffectClassNone {
			t.Errorf("webhook %s: failurePolicy %v sideEffects %v", h.name, h.fp, h.se)
		}
		if strings.Contains(h.name, "pods") && !h.ns {
			t.Errorf("pod webhook %s has no namespaceSelector: kube-system could not heal while it is down", h.name)
		}
		if h.name == "frozen.pods.ipam.poolguard.dev" && !slices.ContainsFunc(h.conds, func(c admissionregistrationv1.MatchCondition) bool { return c.Name == "frozen-annotations-changed" }) {
			t.Errorf("pod UPDATEs reach the webhook unfiltered")
		}
	}
}

// rulesFor returns the rules of a (Cluster)Role that name group/resource.
func rulesFor(t *testing.T, r rendered, kind, name, group, resource string) []rbacv1.PolicyRule {
	t.Helper()
	var role rbacv1.ClusterRole // Role and ClusterRole share the rules' shape.
	decodeStrict(t, r.get(t, kind, name), &role)
	var out []rbacv1.PolicyRule
	for _, rule := range role.Rules {
		if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) {
			out = append(out, rule)
		}
	}
	return out
}

// assertVerbs checks the exact set of verbs a role grants on a resource
// (none given: no access at all).
func assertVerbs(t *testing.T, r rendered, kind, name, group, resource string, verbs ...string) {
	t.Helper()
	var got []string
	for _, rule := range rulesFor(t, r, kind, name, group, resource) {
		for _, v := range rule.Verbs {
			if !slices.Contains(got, v) {
				got = append(got, v)
			}
		}
	}
	if !slices.Equal(sorted(got), sorted(verbs)) {
		t.Errorf("%s %s on %s.%s: verbs %v, want %v", kind, name, resource, group, sorted(got), sorted(verbs))
	}
}

// assertNoWildcardsOrSecrets: no role grants wildcards, and no ClusterRole
// reaches Secrets.
func assertNoWildcardsOrSecrets(t *testing.T, r rendered) {
	t.Helper()
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, name := range r.kinds(kind) {
			var role rbacv1.ClusterRole
			decodeStrict(t, r.get(t, kind, name), &role)
			for _, rule := range role.Rules {
				if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") {
					t.Errorf("%s %s grants a wildcard: %+v", kind, name, rule)
				}
				if kind == "ClusterRole" && slices.Contains(rule.Resources, "secrets") {
					t.Errorf("ClusterRole %s reaches Secrets cluster-wide: %+v", name, rule)
				}
			}
		}
	}
}

func bindingActions(t *testing.T, r rendered, name string) []string {
	t.Helper()
	var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
	decodeStrict(t, r.get(t, "ValidatingAdmissionPolicyBinding", name), &b)
	out := make([]string, len(b.Spec.ValidationActions))
	for i, a := range b.Spec.ValidationActions {
		out[i] = string(a)
	}
	return out
}
