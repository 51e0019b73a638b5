package charts_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// TestRenderViewer: the ClusterRole for people who run kubectl poolguard
// reads pods, namespaces, nodes and the mode's IPPools (and in native mode
// the history and claims who-had and export read), and nothing else;
// viewer.enabled=false leaves it out. TestPluginRBAC (in
// cmd/kubectl-poolguard/poolctl) runs the plugin under it.
func TestRenderViewer(t *testing.T) {
	core := "/pods,namespaces,nodes/get,list"
	for _, tc := range []struct {
		set  []string
		want []string // "groups/resources/verbs"
	}{
		{nil, []string{core, "ipam.poolguard.dev/ippools/get,list", "ipam.poolguard.dev/ipamhistories,ipamclaims/get,list"}},
		{[]string{"mode=calico"}, []string{core, "projectcalico.org,crd.projectcalico.org/ippools/get,list"}},
	} {
		r := render(t, tc.set...)
		var role rbacv1.ClusterRole
		decodeStrict(t, r.get(t, "ClusterRole", fullname+"-viewer"), &role)
		var got []string
		for _, rule := range role.Rules {
			got = append(got, fmt.Sprintf("%s/%s/%s", strings.Join(rule.APIGroups, ","), strings.Join(rule.Resources, ","), strings.Join(rule.Verbs, ",")))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: viewer rules %q, want %q", tc.set, got, tc.want)
		}
		assertNoWildcardsOrSecrets(t, r)
	}
	if o := render(t, "viewer.enabled=false").find("ClusterRole", fullname+"-viewer"); o != nil {
		t.Error("viewer.enabled=false still renders the viewer ClusterRole")
	}
}
