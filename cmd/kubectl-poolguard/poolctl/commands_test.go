package poolctl_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
	"poolguard.dev/poolguard/policy"
)

// TestExplainManifest: explain -f simulates the admission of a pod from a
// file or stdin against the live namespace and pools, creates nothing,
// and exits 1 when the pod would be refused.
func TestExplainManifest(t *testing.T) {
	kc := setUp(t)
	file := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: probe, namespace: payments}\nspec: {containers: [{name: c, image: x}]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, kc, "", "explain", "-f", file)
	if code != poolctl.ExitOK {
		t.Errorf("exit %d, want 0", code)
	}
	contains(t, "explain -f", out, "Pod payments/probe would be admitted.")
	row(t, out, "IPv4", "namespace", "payments", "default", `["trusted"]`, "trusted", "203.0.113.0/25", "yes")
	row(t, out, "IPv6", "default", "pools", "-", "v6", "2001:db8::/64", "yes")

	// A Deployment on stdin naming a pool its namespace may not use.
	deploy := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"shop"},"spec":{"template":{"metadata":{"annotations":{"cni.projectcalico.org/ipv4pools":"[\"trusted\",\"general\"]"}}}}}`
	code, out, _ = run(t, kc, deploy, "explain", "-f", "-", "-n", "web", "-o", "json")
	if code != poolctl.ExitFound {
		t.Errorf("exit %d, want 1 (refused)", code)
	}
	a := decode[poolctl.Admission](t, out)
	if a.Admitted || a.Namespace != "web" || len(a.Refusals) != 1 || !strings.Contains(a.Refusals[0], `pool "trusted" does not allow namespace "web"`) {
		t.Errorf("admission %+v", a)
	}
	if f := a.Families[0]; f.Source != policy.SourcePod || len(f.Pools) != 2 || f.Pools[0].Allowed || !f.Pools[1].Allowed {
		t.Errorf("IPv4 %+v, want trusted refused and general allowed, named by the pod", f)
	}
	if code, _, _ = run(t, kc, "", "explain", "-f", file, "-n", "web"); code != poolctl.ExitError {
		t.Errorf("manifest in payments with -n web: exit %d, want 2", code)
	}
}

// TestExplainNamespace: a namespace's defaults, their validity, and what a
// pod naming none gets, as a table and as YAML.
func TestExplainNamespace(t *testing.T) {
	kc := setUp(t)
	code, out, _ := run(t, kc, "", "explain", "namespace", "payments")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	contains(t, "explain namespace", out, `Default: cni.projectcalico.org/ipv4pools=["trusted"]`, "Annotations: valid", "A pod naming no pool would be admitted.")
	row(t, out, "IPv4", "namespace", "payments", "default", `["trusted"]`, "trusted", "203.0.113.0/25", "yes")

	code, out, _ = run(t, kc, "", "explain", "ns", "web", "-o", "yaml")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	var r poolctl.NamespaceReport
	if err := yaml.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Valid || len(r.Defaults) != 0 || !r.NewPod.Admitted || r.NewPod.Families[0].Source != policy.SourceDefault {
		t.Errorf("web: %+v", r)
	}
	var v4 []string
	for _, p := range r.NewPod.Families[0].Pools {
		v4 = append(v4, p.Pool)
	}
	if !slices.Equal(v4, []string{"general"}) {
		t.Errorf("web's IPv4 default pools %q, want [general] (trusted is Manual)", v4)
	}
}

// TestExplainPod: a running pod's frozen pools and provenance, what it
// would get now, and the pool each address lies in.
func TestExplainPod(t *testing.T) {
	kc := setUp(t)
	code, out, _ := run(t, kc, "", "explain", "pod", "outside", "-n", "payments")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	contains(t, "explain pod", out, "Provenance: valid", `"namespace":"payments"`, `"ranges":{"trusted":"203.0.113.0/25"}`)
	row(t, out, "198.51.100.12", "general", "198.51.100.0/25", "no")
	row(t, out, "payments", "outside", "address", "IPv4")

	code, out, _ = run(t, kc, "", "explain", "pod", "drifted", "-n", "payments", "-o", "json")
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	r := decode[poolctl.PodReport](t, out)
	if !r.ProvenanceValid || *r.Frozen[0].List != `["general"]` || *r.Now.Families[0].List != `["trusted"]` {
		t.Errorf("drifted: %+v", r)
	}
	if len(r.Addresses) != 1 || r.Addresses[0].Pool != "general" || !r.Addresses[0].Expected {
		t.Errorf("drifted's address: %+v", r.Addresses)
	}
	if len(r.Findings) != 1 || r.Findings[0].Kind != poolctl.KindDrift {
		t.Errorf("drifted's findings: %+v", r.Findings)
	}

	_, out, _ = run(t, kc, "", "explain", "pod", "unfrozen", "-n", "web")
	contains(t, "explain pod unfrozen", out, "Provenance: NOT VALID", "no "+policy.AnnotationProvenance, "Not frozen: admitted while the webhook was bypassed", "The fail-safe pools:")

	code, _, errOut := run(t, kc, "", "explain", "pod", "nope", "-n", "web")
	if code != poolctl.ExitError {
		t.Errorf("missing pod: exit %d, want 2", code)
	}
	contains(t, "missing pod", errOut, `cannot get pod "nope" in namespace "web"`, "not found")
}

// TestDrift: drift finds exactly the drifted, unfrozen and misplaced pods,
// counts the hostNetwork pod it skips, and exits 1; a clean namespace
// exits 0.
func TestDrift(t *testing.T) {
	kc := setUp(t)
	code, out, _ := run(t, kc, "", "drift", "-A", "-o", "json")
	if code != poolctl.ExitFound {
		t.Errorf("exit %d, want 1", code)
	}
	r := decode[poolctl.DriftReport](t, out)
	if got := findings(r.Findings); !slices.Equal(got, wantFindings) {
		t.Errorf("findings %q, want %q", got, wantFindings)
	}
	if r.Checked != 6 || r.HostNetwork != 1 {
		t.Errorf("checked %d (want 6), hostNetwork %d (want 1)", r.Checked, r.HostNetwork)
	}
	// Read in pages of two pods, the report is the same.
	restore := poolctl.SetPageSize(2)
	pagedCode, paged, _ := run(t, kc, "", "drift", "-A", "-o", "json")
	restore()
	if pagedCode != code || paged != out {
		t.Errorf("in pages of two pods: exit %d and\n%s\nwant exit %d and the same report", pagedCode, paged, code)
	}

	code, out, _ = run(t, kc, "", "drift", "-n", "web")
	if code != poolctl.ExitFound {
		t.Errorf("exit %d, want 1", code)
	}
	row(t, out, "web", "unfrozen", "unfrozen", "-")
	contains(t, "drift -n web", out, "1 finding(s) in 1 pod(s) checked; skipped 1 hostNetwork pod(s).")

	code, out, _ = run(t, kc, "", "drift", "-n", "quiet")
	if code != poolctl.ExitOK {
		t.Errorf("exit %d, want 0", code)
	}
	contains(t, "drift -n quiet", out, "No drift: 1 pod(s) checked.")
}

// TestAccess: a user without permission is told what is missing and which
// ClusterRole grants it; bound to the chart's viewer ClusterRole, the same
// user can run every command.
func TestAccess(t *testing.T) {
	setUp(t)
	e := controlPlane(t)
	kc, err := userKubeconfig(e, "alice")
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, kc, "", "drift", "-A")
	if code != poolctl.ExitError {
		t.Errorf("exit %d, want 2", code)
	}
	contains(t, "forbidden drift", errOut, "forbidden: cannot list namespaces", `User "alice" cannot list resource "namespaces"`, "--clusterrole=poolguard-viewer")

	role := chartClusterRole(t, "poolguard-viewer")
	bindViewer(t, e.Client, role, "alice")
	// The authorizer's cache sees the binding within moments.
	deadline := time.Now().Add(15 * time.Second)
	for code, _, _ = run(t, kc, "", "drift", "-A"); code == poolctl.ExitError && time.Now().Before(deadline); code, _, _ = run(t, kc, "", "drift", "-A") {
		time.Sleep(200 * time.Millisecond)
	}
	if code != poolctl.ExitFound {
		t.Errorf("drift -A as a viewer: exit %d, want 1", code)
	}
	for _, args := range [][]string{{"explain", "pod", "ok", "-n", "payments"}, {"explain", "namespace", "web"}} {
		if code, _, _ := run(t, kc, "", args...); code != poolctl.ExitOK {
			t.Errorf("%q as a viewer: exit %d, want 0", args, code)
		}
	}
	// who-had reads the claims and the history: nobody held this one.
	if code, _, _ := run(t, kc, "", "who-had", "198.18.99.250", "--at", "1h"); code != poolctl.ExitFound {
		t.Errorf("who-had as a viewer: exit %d, want 1 (nobody)", code)
	}
}

// TestPodsForbidden: a user who may read namespaces and pools but not
// pods is told which list was refused and which ClusterRole grants it.
func TestPodsForbidden(t *testing.T) {
	setUp(t)
	e := controlPlane(t)
	kc, err := userKubeconfig(e, "bob")
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "no-pods"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"ippools"}, Verbs: []string{"get", "list"}},
	}}
	bindViewer(t, e.Client, role, "bob")
	deadline := time.Now().Add(15 * time.Second)
	code, _, errOut := run(t, kc, "", "drift", "-n", "web")
	for ; strings.Contains(errOut, "cannot get namespace") && time.Now().Before(deadline); code, _, errOut = run(t, kc, "", "drift", "-n", "web") {
		time.Sleep(200 * time.Millisecond)
	}
	if code != poolctl.ExitError {
		t.Errorf("exit %d, want 2", code)
	}
	contains(t, "forbidden pods", errOut, `forbidden: cannot list pods in namespace "web"`, `User "bob" cannot list resource "pods"`, "--clusterrole=poolguard-viewer")
}

// TestNotAvailable: an error that says what to do: Calico mode where
// Calico is not installed.
func TestNotAvailable(t *testing.T) {
	kc := setUp(t)
	code, _, errOut := run(t, kc, "", "drift", "-A", "--mode", "calico")
	if code != poolctl.ExitError {
		t.Errorf("calico mode: exit %d, want 2", code)
	}
	contains(t, "calico mode", errOut, "is Calico installed?")
}
