package charts_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"poolguard.dev/poolguard/charts"
)

// cniConfigMap holds cni.networkConfig.
const cniConfigMap = fullname + "-cni-config"

// networkConfigSet is a minimal cni.networkConfig as --set arguments.
var networkConfigSet = []string{
	"cni.networkConfig.cniVersion=1.0.0",
	"cni.networkConfig.name=pods",
	"cni.networkConfig.plugins[0].type=bridge",
	"cni.networkConfig.plugins[0].ipam.type=poolguard-ipam",
}

// assertCNIInstallerRBAC: the installer's identity may create tokens of the
// plugin's ServiceAccount only, in the release namespace, and get Nodes;
// nothing else. The plugin's identity cannot mint tokens, and no pod
// mounts its token.
func assertCNIInstallerRBAC(t *testing.T, r rendered) {
	t.Helper()
	var role rbacv1.Role
	decodeStrict(t, r.get(t, "Role", cniInstallerName), &role)
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}, ResourceNames: []string{cniName}}}
	if role.Namespace != namespace || !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("installer Role (ns %q) = %+v, want only %+v", role.Namespace, role.Rules, want)
	}
	var cr rbacv1.ClusterRole
	decodeStrict(t, r.get(t, "ClusterRole", cniInstallerName), &cr)
	want = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}}
	if !reflect.DeepEqual(cr.Rules, want) {
		t.Errorf("installer ClusterRole = %+v, want only %+v", cr.Rules, want)
	}
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		var b rbacv1.RoleBinding // the two bindings share this shape
		decodeStrict(t, r.get(t, kind, cniInstallerName), &b)
		subject := rbacv1.Subject{Kind: "ServiceAccount", Name: cniInstallerName, Namespace: namespace}
		if b.RoleRef.Name != cniInstallerName || b.RoleRef.Kind != strings.TrimSuffix(kind, "Binding") || !slices.Equal(b.Subjects, []rbacv1.Subject{subject}) {
			t.Errorf("%s %s binds %+v to %+v", kind, cniInstallerName, b.RoleRef, b.Subjects)
		}
	}
	// No other role reaches tokens; the plugin's own ClusterRole included.
	for _, kind := range []string{"Role", "ClusterRole"} {
		for _, name := range r.kinds(kind) {
			if rules := rulesFor(t, r, kind, name, "", "serviceaccounts/token"); len(rules) > 0 && name != cniInstallerName {
				t.Errorf("%s %s may create tokens: %+v", kind, name, rules)
			}
		}
	}
	var sa corev1.ServiceAccount
	decodeStrict(t, r.get(t, "ServiceAccount", cniName), &sa)
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("the plugin's ServiceAccount lets pods mount its token: automount %v", sa.AutomountServiceAccountToken)
	}
	r.get(t, "ServiceAccount", cniInstallerName)
}

// assertNodeBoundTokenArgs: the installer requests the plugin's tokens
// bound to the node the pod runs on, and no longer hands the plugin its
// own projected token.
func assertNodeBoundTokenArgs(t *testing.T, c corev1.Container) {
	t.Helper()
	flags := flagsOf(c.Args)
	for k, want := range map[string]string{"node-name": "$(NODE_NAME)", "namespace": namespace, "service-account": cniName, "token-expiration": "24h"} {
		if flags[k] != want {
			t.Errorf("--%s = %q, want %q (args %v)", k, flags[k], want, c.Args)
		}
	}
	if _, ok := flags["token"]; ok {
		t.Errorf("the installer still passes its own token file to the plugin: %v", c.Args)
	}
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" })
	if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not the downward API's spec.nodeName: %+v", c.Env)
	}
}

// assertNoNetworkConfig: by default the cluster's network plugin owns the
// node's CNI configuration: no ConfigMap, no network configuration flag,
// and only poolguard's own subdirectory of the configuration directory is
// mounted.
func assertNoNetworkConfig(t *testing.T, r rendered, c corev1.Container) {
	t.Helper()
	if r.find("ConfigMap", cniConfigMap) != nil {
		t.Errorf("ConfigMap %s rendered without cni.networkConfig", cniConfigMap)
	}
	for flag := range flagsOf(c.Args) {
		if strings.HasPrefix(flag, "network-config") || flag == "host-kubeconfig" {
			t.Errorf("--%s passed without cni.networkConfig", flag)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/host/cni/net.d" {
			t.Errorf("the whole CNI configuration directory is mounted without cni.networkConfig: %+v", m)
		}
	}
}

// TestRenderCNINetworkConfig: with cni.networkConfig the chart ships it in
// a ConfigMap (as JSON, numbers intact), mounts it whole (no subPath, so
// changes reach the installer) together with the whole host configuration
// directory, and passes the flags that make the installer write it; the
// path it reads is where the ConfigMap's key is mounted.
func TestRenderCNINetworkConfig(t *testing.T) {
	const values = `
cni:
  confDir: /var/lib/cni/net.d
  networkConfigName: 05-pods.conflist
  networkConfig:
    cniVersion: 1.0.0
    name: pods
    plugins:
      - type: bridge
        mtu: 1450
        ipam: {type: poolguard-ipam, failSafe: refuse}
      - type: portmap
        capabilities: {portMappings: true}
`
	out, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := charts.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{objs: objs}

	var cm corev1.ConfigMap
	decodeStrict(t, r.get(t, "ConfigMap", cniConfigMap), &cm)
	raw, ok := cm.Data["05-pods.conflist"]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("ConfigMap data keys = %v, want 05-pods.conflist", cm.Data)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("network configuration is not JSON: %v\n%s", err, raw)
	}
	want := map[string]any{"cniVersion": "1.0.0", "name": "pods", "plugins": []any{
		// The chart fills in the plugin's timeout (cni.timeout), the
		// collector's grace period it is checked against, the cooldown and
		// the history's finalizer (allocator.history.enabled).
		map[string]any{"type": "bridge", "mtu": 1450.0, "ipam": map[string]any{"type": "poolguard-ipam", "failSafe": "refuse", "timeout": "30s", "gcGracePeriod": "5m", "cooldown": "5m", "history": true}},
		map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("network configuration = %v, want %v", got, want)
	}
	if !strings.Contains(raw, `"mtu":1450`) {
		t.Errorf("numbers not kept as written: %s", raw)
	}

	var ds appsv1.DaemonSet
	decodeStrict(t, r.get(t, "DaemonSet", cniName), &ds)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	flags := flagsOf(c.Args)
	for k, v := range map[string]string{
		"network-config-dir":  "/host/cni/net.d",
		"network-config-name": "05-pods.conflist",
		"host-kubeconfig":     "/var/lib/cni/net.d/poolguard/poolguard-kubeconfig",
		"kubeconfig":          "/host/cni/net.d/poolguard/poolguard-kubeconfig",
	} {
		if flags[k] != v {
			t.Errorf("--%s = %q, want %q", k, flags[k], v)
		}
	}
	assertNodeBoundTokenArgs(t, c)

	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath %q: updates would not reach the installer", m.Name, m.SubPath)
		}
	}
	if v := volumes["cni-net-d"]; v.HostPath == nil || v.HostPath.Path != "/var/lib/cni/net.d" || mounts["cni-net-d"].MountPath != "/host/cni/net.d" {
		t.Errorf("host configuration directory: volume %+v mount %+v", v, mounts["cni-net-d"])
	}
	if _, ok := volumes["cni-kubeconfig"]; ok {
		t.Errorf("poolguard's subdirectory mounted a second time over the whole directory")
	}
	v := volumes["network-config"]
	if v.ConfigMap == nil || v.ConfigMap.Name != cniConfigMap || !mounts["network-config"].ReadOnly {
		t.Fatalf("network configuration volume %+v, mount %+v", v, mounts["network-config"])
	}
	if want := mounts["network-config"].MountPath + "/05-pods.conflist"; flags["network-config"] != want {
		t.Errorf("--network-config = %q, but the ConfigMap's key is mounted at %q", flags["network-config"], want)
	}
	if len(volumes) != 3 {
		t.Errorf("volumes = %v, want cni-bin, cni-net-d and network-config only", volumes)
	}
}
