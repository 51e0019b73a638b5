package charts_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/webhook/poolseed"
)

// TestRenderIPPools: pools from values are not Helm objects (helm could not
// create them before the webhook they pass serves) but a ConfigMap the
// webhook applies, and the webhook may create and patch those pools only.
func TestRenderIPPools(t *testing.T) {
	cm := fullname + "-ippools"
	r := render(t, "ippools[0].name=trusted", "ippools[0].spec.cidr=198.51.100.0/24", "ippools[0].spec.assignmentMode=Manual",
		"ippools[1].name=general", "ippools[1].spec.cidr=203.0.113.0/24")
	if names := r.kinds("IPPool"); len(names) > 0 {
		t.Errorf("the chart renders IPPools %v: a first install would fail on the webhook that does not serve yet", names)
	}
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

// Pools the install test puts into the first helm install's values: one
// good, one the API server refuses.
const (
	seededPool = "seeded"
	seededCIDR = "198.18.0.0/24"
	badPool    = "typo"
	badCIDR    = "198.18.1.1/24"
)

// seededValues are the --set values for seededPool and badPool.
var seededValues = []string{
	// Manual, so that it is no default pool for the other subtests' pods.
	"ippools[0].name=" + seededPool, "ippools[0].spec.cidr=" + seededCIDR, "ippools[0].spec.assignmentMode=Manual",
	"ippools[1].name=" + badPool, "ippools[1].spec.cidr=" + badCIDR,
}

// testIPPoolsFromValues: after a first helm install with seededValues, the
// webhook process applies the good pool through its own webhooks (so it
// comes back defaulted) and reports the bad one as a Warning event on the
// ConfigMap, naming the pool and the API server's reason.
func testIPPoolsFromValues(ctx context.Context, t *testing.T, c *cluster, p *webhookProcess) {
	var pool v1alpha1.IPPool
	waitFor(t, p, "IPPool "+seededPool+" from values", func() bool {
		return c.admin.Get(ctx, client.ObjectKey{Name: seededPool}, &pool) == nil
	})
	if pool.Spec.CIDR != seededCIDR || pool.Spec.AssignmentMode != v1alpha1.AssignmentManual || pool.Spec.BlockSize != 26 {
		t.Errorf("IPPool from values not defaulted by the mutating webhook: %+v", pool.Spec)
	}
	managers := []string{}
	for _, f := range pool.ManagedFields {
		managers = append(managers, f.Manager)
	}
	if !slices.Contains(managers, poolseed.FieldManager) {
		t.Errorf("IPPool %s managed by %v, want %s", seededPool, managers, poolseed.FieldManager)
	}

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
	if err := c.admin.Get(ctx, client.ObjectKey{Name: badPool}, &v1alpha1.IPPool{}); err == nil {
		t.Errorf("the bad pool %s was created", badPool)
	}
	if !strings.Contains(p.log.String(), badPool) {
		t.Errorf("the webhook's log does not mention the refused pool %s", badPool)
	}
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
