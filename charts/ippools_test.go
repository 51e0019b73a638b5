package charts_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/webhook/poolseed"
)

// TestRenderIPPools: pools from values go into a ConfigMap the webhook
// applies (through its own webhooks, on every install and upgrade), and the
// webhook may create and patch those pools only. Their pre-install hooks
// are TestRenderIPPoolHooks'.
func TestRenderIPPools(t *testing.T) {
	cm := fullname + "-ippools"
	r := render(t, "ippools[0].name=trusted", "ippools[0].spec.cidr=198.51.100.0/24", "ippools[0].spec.assignmentMode=Manual",
		"ippools[1].name=general", "ippools[1].spec.cidr=203.0.113.0/24")
	var m corev1.ConfigMap
	decodeStrict(t, r.get(t, "ConfigMap", cm), &m)
	pools, errs := poolseed.Parse([]byte(m.Data[poolseed.DataKey]))
	if len(errs) > 0 || len(pools) != 2 || pools[0].Name != "trusted" || pools[0].Spec["cidr"] != "198.51.100.0/24" || pools[0].Spec["assignmentMode"] != "Manual" || pools[1].Name != "general" {
		t.Errorf("ConfigMap %s holds %+v %v", cm, pools, errs)
	}
	if args := deployment(t, r).Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--ippools-configmap="+cm) {
		t.Errorf("the webhook is not told to apply %s: %v", cm, args)
	}
	assertVerbs(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools", "create", "get", "list", "patch", "update", "watch")
	for _, rule := range rulesFor(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools") {
		if slices.Contains(rule.Verbs, "create") && !slices.Equal(rule.ResourceNames, []string{"trusted", "general"}) {
			t.Errorf("the webhook may create IPPools other than those of values: %+v", rule)
		}
	}
	assertNamedConfigMapAccess(t, r, cm)

	// Without pools: the ConfigMap is an empty list, and no rule with empty
	// resourceNames (which RBAC reads as every name) appears.
	r = render(t)
	decodeStrict(t, r.get(t, "ConfigMap", cm), &m)
	if pools, errs := poolseed.Parse([]byte(m.Data[poolseed.DataKey])); len(pools)+len(errs) > 0 {
		t.Errorf("default ConfigMap holds %+v %v", pools, errs)
	}
	assertVerbs(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools", "get", "list", "patch", "update", "watch")
	r = render(t, "allocator.enabled=false", "ippools[0].name=trusted", "ippools[0].spec.cidr=198.51.100.0/24")
	assertVerbs(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools", "create", "get", "list", "patch", "watch")
	for _, rule := range rulesFor(t, r, "ClusterRole", webhookName, "ipam.poolguard.dev", "ippools") {
		if slices.Contains(rule.Verbs, "patch") && !slices.Equal(rule.ResourceNames, []string{"trusted"}) {
			t.Errorf("in admission-only mode the webhook may patch IPPools other than those of values: %+v", rule)
		}
	}
}

// TestRenderIPPoolHooks: where poolguard allocates, each pool of values is
// also an IPPool the first install creates as a pre-install hook, before
// the webhook exists (its own pods need an Automatic pool to start): spec
// exactly as written (the webhook defaults it later, through the seeder),
// never deleted by helm once created. helm template's lookup finds no pool,
// so every pool renders here; on a real install an existing one is skipped.
// In webhook-only mode (allocator off) the seeder alone creates the pools;
// in Calico mode pools in values are refused outright.
func TestRenderIPPoolHooks(t *testing.T) {
	pools := []string{"ippools[0].name=trusted", "ippools[0].spec.cidr=198.51.100.0/24", "ippools[0].spec.assignmentMode=Manual",
		"ippools[1].name=general", "ippools[1].spec.cidr=203.0.113.0/24"}
	r := render(t, pools...)
	if names := r.kinds("IPPool"); !slices.Equal(names, []string{"trusted", "general"}) {
		t.Fatalf("IPPool hooks rendered: %v, want [trusted general]", names)
	}
	wantAnnotations := map[string]string{
		"helm.sh/hook":               "pre-install",
		"helm.sh/hook-weight":        "-10",
		"helm.sh/hook-delete-policy": "hook-failed",
	}
	wantSpecs := map[string]v1alpha1.IPPoolSpec{
		"trusted": {CIDR: "198.51.100.0/24", AssignmentMode: v1alpha1.AssignmentManual},
		"general": {CIDR: "203.0.113.0/24"},
	}
	for _, name := range []string{"trusted", "general"} {
		var p v1alpha1.IPPool
		decodeStrict(t, r.get(t, "IPPool", name), &p)
		if !maps.Equal(p.Annotations, wantAnnotations) {
			t.Errorf("IPPool %s annotations %v, want %v", name, p.Annotations, wantAnnotations)
		}
		if p.Namespace != "" {
			t.Errorf("IPPool %s rendered in namespace %q: IPPools are cluster-scoped", name, p.Namespace)
		}
		if p.Labels["app.kubernetes.io/instance"] != release {
			t.Errorf("IPPool %s labels %v lack the release", name, p.Labels)
		}
		if !reflect.DeepEqual(p.Spec, wantSpecs[name]) {
			t.Errorf("IPPool %s spec %+v, want %+v (as written in values, not defaulted)", name, p.Spec, wantSpecs[name])
		}
	}

	// Webhook-only mode: the ConfigMap still carries the pools, no hook.
	r = render(t, append([]string{"allocator.enabled=false"}, pools...)...)
	if names := r.kinds("IPPool"); len(names) > 0 {
		t.Errorf("IPPool hooks %v rendered with the allocator off", names)
	}
	var m corev1.ConfigMap
	decodeStrict(t, r.get(t, "ConfigMap", fullname+"-ippools"), &m)
	if got, errs := poolseed.Parse([]byte(m.Data[poolseed.DataKey])); len(errs) > 0 || len(got) != 2 {
		t.Errorf("with the allocator off, ConfigMap holds %+v %v", got, errs)
	}

	// Calico mode: the pools are Calico's.
	out, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace, Set: append([]string{"mode=calico"}, pools...)})
	if err == nil || !strings.Contains(err.Error(), "in Calico mode the pools are Calico's IPPools") {
		t.Errorf("mode=calico with ippools rendered (err %v):\n%s", err, out)
	}
}

// assertNamedConfigMapAccess: the webhook reads one ConfigMap, by name.
func assertNamedConfigMapAccess(t *testing.T, r rendered, cm string) {
	t.Helper()
	assertVerbs(t, r, "Role", webhookName, "", "configmaps", "get", "list", "watch")
	assertVerbs(t, r, "ClusterRole", webhookName, "", "configmaps")
	for _, rule := range rulesFor(t, r, "Role", webhookName, "", "configmaps") {
		if !slices.Equal(rule.ResourceNames, []string{cm}) {
			t.Errorf("the webhook reads ConfigMaps other than %s: %+v", cm, rule)
		}
	}
}

// Pools of the install test's values: one good, one the API server refuses
// (host bits set: the CRD's CEL rule, and poolguard's webhook, refuse it).
const (
	seededPool = "seeded"
	seededCIDR = "198.18.0.0/24"
	badPool    = "typo"
	badCIDR    = "198.18.1.1/24"
)

// seededValues are the --set values of the first install's pool.
var seededValues = []string{
	// Manual, so that it is no default pool for the other subtests' pods.
	"ippools[0].name=" + seededPool, "ippools[0].spec.cidr=" + seededCIDR, "ippools[0].spec.assignmentMode=Manual",
}

// badPoolValues are the --set values declaring badPool as ippools[i].
func badPoolValues(i int) []string {
	return []string{fmt.Sprintf("ippools[%d].name=%s", i, badPool), fmt.Sprintf("ippools[%d].spec.cidr=%s", i, badCIDR)}
}

// testFirstInstallRefusesBadPool: a first install whose values hold a pool
// the CRD refuses fails at the pool's pre-install hook, with the API
// server's reason, before anything else of the release exists; nothing of
// it is left once it is uninstalled. A release and namespace of its own,
// so that the real install that follows starts clean.
func testFirstInstallRefusesBadPool(ctx context.Context, t *testing.T, c *cluster, values []string) {
	const name, ns = "refused", "poolguard-refused"
	must(t, c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	out, err := c.helm.Install(charts.Release{Name: name, Namespace: ns, Set: append(slices.Clip(values), badPoolValues(0)...)}, false)
	if err == nil {
		t.Errorf("helm install with IPPool %s (cidr %s) succeeded:\n%s", badPool, badCIDR, out)
	} else {
		t.Logf("helm install refused: %v", err)
		if msg := err.Error(); !strings.Contains(msg, "host bits") || !strings.Contains(msg, badPool) {
			t.Errorf("the failed install does not say which pool is wrong and why: %v", err)
		}
	}
	if err := c.admin.Get(ctx, client.ObjectKey{Name: badPool}, &v1alpha1.IPPool{}); !apierrors.IsNotFound(err) {
		t.Errorf("IPPool %s after the failed install: err %v, want NotFound", badPool, err)
	}
	// The hook ran first: none of the release's objects were created (a
	// webhook configuration left behind, failing closed towards a Service
	// with no endpoints, would stop every pod in the cluster).
	assertNoReleaseObjects(ctx, t, c, name, ns)

	// helm keeps the failed release (helm 4 lists every status by default).
	if out, err := c.helm.Run(nil, "list", "--failed", "--short", "--namespace", ns); err != nil || string(bytes.TrimSpace(out)) != name {
		t.Errorf("failed releases in %s: %q %v, want %s", ns, out, err, name)
	}
	helmUninstall(t, c, name, ns)
	if out, err := c.helm.Run(nil, "list", "--short", "--namespace", ns); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("releases left in %s after uninstall: %q %v", ns, out, err)
	}
	assertNoReleaseObjects(ctx, t, c, name, ns)
	if err := c.admin.Get(ctx, client.ObjectKey{Name: badPool}, &v1alpha1.IPPool{}); !apierrors.IsNotFound(err) {
		t.Errorf("IPPool %s after uninstall: err %v, want NotFound", badPool, err)
	}
}

// assertNoReleaseObjects: no object labelled as release's exists, among
// the kinds an install would create first or that matter cluster-wide.
func assertNoReleaseObjects(ctx context.Context, t *testing.T, c *cluster, release, ns string) {
	t.Helper()
	mine := client.MatchingLabels{"app.kubernetes.io/instance": release}
	lists := map[string]client.ObjectList{
		"ConfigMaps":                      &corev1.ConfigMapList{},
		"ServiceAccounts":                 &corev1.ServiceAccountList{},
		"Deployments":                     &appsv1.DeploymentList{},
		"MutatingWebhookConfigurations":   &admissionregistrationv1.MutatingWebhookConfigurationList{},
		"ValidatingWebhookConfigurations": &admissionregistrationv1.ValidatingWebhookConfigurationList{},
		"IPPools":                         &v1alpha1.IPPoolList{},
	}
	for kind, list := range lists {
		opts := []client.ListOption{mine}
		if kind == "ConfigMaps" || kind == "ServiceAccounts" || kind == "Deployments" {
			opts = append(opts, client.InNamespace(ns))
		}
		must(t, c.admin.List(ctx, list, opts...))
		if n := meta.LenList(list); n > 0 {
			t.Errorf("%d %s of release %s exist", n, kind, release)
		}
	}
}

// helmUninstall uninstalls a release (failed or not) and waits for its
// objects to go.
func helmUninstall(t *testing.T, c *cluster, name, ns string) {
	t.Helper()
	if out, err := c.helm.Run(nil, "uninstall", name, "--namespace", ns, "--wait"); err != nil {
		t.Fatalf("helm uninstall %s: %v\n%s", name, err, out)
	}
}

// testIPPoolFromHook: right after the first helm install returns, before
// any webhook process runs, the pool of values exists: the pre-install
// hook created it, as written (only the CRD's own defaults applied: no
// webhook has seen it).
func testIPPoolFromHook(ctx context.Context, t *testing.T, c *cluster) {
	var pool v1alpha1.IPPool
	if err := c.admin.Get(ctx, client.ObjectKey{Name: seededPool}, &pool); err != nil {
		t.Fatalf("IPPool %s from values right after helm install: %v", seededPool, err)
	}
	t.Logf("IPPool %s after helm install: spec %+v, managed by %v", seededPool, pool.Spec, managers(&pool))
	if pool.Annotations["helm.sh/hook"] != "pre-install" {
		t.Errorf("IPPool %s was not created by the pre-install hook: annotations %v", seededPool, pool.Annotations)
	}
	if pool.Spec.CIDR != seededCIDR || pool.Spec.AssignmentMode != v1alpha1.AssignmentManual {
		t.Errorf("IPPool %s from the hook: %+v", seededPool, pool.Spec)
	}
	// The CRD defaults no block size: only the mutating webhook does. So
	// 0 here, and 26 once the seeder has applied the pool through it.
	if pool.Spec.BlockSize != 0 {
		t.Errorf("IPPool %s has block size %d before any webhook ran: the CRD defaults it, so the seeder's 26 below proves nothing", seededPool, pool.Spec.BlockSize)
	}
	if slices.Contains(managers(&pool), poolseed.FieldManager) {
		t.Errorf("IPPool %s managed by %s before the webhook runs", seededPool, poolseed.FieldManager)
	}
}

// testIPPoolsFromValues: once the webhook serves, its seeder applies the
// pool the hook created through the webhook's own mutating and validating
// webhooks: it takes the pool over (its field manager) and the pool comes
// back defaulted.
func testIPPoolsFromValues(ctx context.Context, t *testing.T, c *cluster, p *webhookProcess) {
	var pool v1alpha1.IPPool
	waitFor(t, p, "IPPool "+seededPool+" applied by "+poolseed.FieldManager, func() bool {
		return c.admin.Get(ctx, client.ObjectKey{Name: seededPool}, &pool) == nil && slices.Contains(managers(&pool), poolseed.FieldManager)
	})
	t.Logf("IPPool %s after the seeder: spec %+v, managed by %v", seededPool, pool.Spec, managers(&pool))
	if pool.Spec.CIDR != seededCIDR || pool.Spec.AssignmentMode != v1alpha1.AssignmentManual || pool.Spec.BlockSize != 26 {
		t.Errorf("IPPool from values not defaulted by the mutating webhook: %+v", pool.Spec)
	}
}

// testIPPoolRefusedOnUpgrade: after a helm upgrade adding badPool to
// values, the running webhook reports it as a Warning event on the
// ConfigMap, naming the pool and the webhook's reason, and logs it; the
// pool is not created (pre-install hooks do not run on upgrade).
func testIPPoolRefusedOnUpgrade(ctx context.Context, t *testing.T, c *cluster, p *webhookProcess) {
	cm := installRelease + "-ippools"
	var refused *eventsv1.Event
	waitFor(t, p, "an "+poolseed.ReasonRefused+" event for "+badPool, func() bool {
		var list eventsv1.EventList
		if err := c.admin.List(ctx, &list, client.InNamespace(installNS)); err != nil {
			t.Fatal(err)
		}
		for i, e := range list.Items {
			if e.Regarding.Kind == "ConfigMap" && e.Regarding.Name == cm && e.Reason == poolseed.ReasonRefused && strings.Contains(e.Note, `"`+badPool+`"`) {
				refused = &list.Items[i]
				return true
			}
		}
		return false
	})
	t.Logf("refusal reported: %s %s: %s", refused.Type, refused.Reason, refused.Note)
	if refused.Type != corev1.EventTypeWarning || !strings.Contains(refused.Note, "did you mean 198.18.1.0/24?") {
		t.Errorf("the refusal does not say what is wrong: %s %q", refused.Type, refused.Note)
	}
	if err := c.admin.Get(ctx, client.ObjectKey{Name: badPool}, &v1alpha1.IPPool{}); !apierrors.IsNotFound(err) {
		t.Errorf("IPPool %s after the upgrade: err %v, want NotFound", badPool, err)
	}
	if !strings.Contains(p.log.String(), badPool) {
		t.Errorf("the webhook's log does not mention the refused pool %s", badPool)
	}
}

// managers are the field managers of an object.
func managers(o metav1.Object) []string {
	var out []string
	for _, f := range o.GetManagedFields() {
		out = append(out, f.Manager)
	}
	return out
}

// waitFor polls cond for up to a minute: the webhook applies pools
// asynchronously, after it serves and, on a restart, after it is elected.
func waitFor(t *testing.T, p *webhookProcess, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute; webhook log:\n%s", what, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
