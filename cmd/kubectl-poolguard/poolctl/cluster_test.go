package poolctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/source"
	"poolguard.dev/poolguard/test/harness"
)

// What drift -A must find in the world, and nothing else.
var wantFindings = []string{
	"legacy/opted unfrozen",
	"payments/drifted drift IPv4",
	"payments/outside address IPv4",
	"web/unfrozen unfrozen",
}

var (
	worldOnce  sync.Once
	worldErr   error
	kubeconfig string // a cluster admin's
)

// setUp builds, once, what the integration tests run the plugin against:
// IPPools, namespaces with defaults, pods as the webhook would have
// frozen them (policy.Freeze with the live namespace and pools), and
// drifted, unfrozen and misplaced ones; it returns an admin's kubeconfig.
func setUp(t *testing.T) string {
	t.Helper()
	e := controlPlane(t)
	worldOnce.Do(func() { kubeconfig, worldErr = build(e) })
	if worldErr != nil {
		t.Fatalf("building the test world: %v", worldErr)
	}
	return kubeconfig
}

func build(e *harness.Env) (string, error) {
	ctx := context.Background()
	c := e.Client
	byName := func(ns string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{policy.LabelNamespaceName: ns}}
	}
	for _, p := range []v1alpha1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "general"}, Spec: v1alpha1.IPPoolSpec{CIDR: "198.51.100.0/25", AssignmentMode: v1alpha1.AssignmentAutomatic}},
		{ObjectMeta: metav1.ObjectMeta{Name: "trusted"}, Spec: v1alpha1.IPPoolSpec{CIDR: "203.0.113.0/25", AssignmentMode: v1alpha1.AssignmentManual, NamespaceSelector: byName("payments")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: v1alpha1.IPPoolSpec{CIDR: "2001:db8::/64", AssignmentMode: v1alpha1.AssignmentAutomatic}},
	} {
		if err := c.Create(ctx, &p); err != nil {
			return "", err
		}
	}
	for _, n := range []corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "payments", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "web"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "quiet"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Labels: map[string]string{"ipam.poolguard.dev/opt-out": "true"}}},
	} {
		if err := c.Create(ctx, &n); err != nil {
			return "", err
		}
	}
	ix, err := source.Native{Reader: c}.Snapshot(ctx)
	if err != nil {
		return "", err
	}
	live := func(name string) (policy.Namespace, error) {
		var n corev1.Namespace
		err := c.Get(ctx, client.ObjectKey{Name: name}, &n)
		return policy.Namespace{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations, ResourceVersion: n.ResourceVersion}, err
	}
	payments, err := live("payments")
	if err != nil {
		return "", err
	}
	quiet, err := live("quiet")
	if err != nil {
		return "", err
	}
	// payments' default before a late edit: what drifted was frozen to.
	before := payments
	before.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["general"]`}
	before.ResourceVersion = "1"
	frozen := func(n policy.Namespace) map[string]string { return policy.Freeze(nil, n, ix).Apply(nil) }
	for _, p := range []struct {
		ns, name    string
		annotations map[string]string
		hostNetwork bool
		ips         []string
	}{
		{"payments", "ok", frozen(payments), false, []string{"203.0.113.10", "2001:db8::10"}},
		{"payments", "drifted", frozen(before), false, []string{"198.51.100.11"}},
		{"payments", "outside", frozen(payments), false, []string{"198.51.100.12"}},
		{"web", "unfrozen", map[string]string{policy.AnnotationIPv4Pools: `["general"]`}, false, []string{"198.51.100.13"}},
		{"web", "host", nil, true, nil},
		{"quiet", "clean", frozen(quiet), false, []string{"198.51.100.14"}},
		{"legacy", "opted", nil, false, nil},
	} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, Annotations: p.annotations},
			Spec:       corev1.PodSpec{HostNetwork: p.hostNetwork, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		}
		if err := c.Create(ctx, pod); err != nil {
			return "", err
		}
		if len(p.ips) == 0 {
			continue
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP = p.ips[0]
		for _, ip := range p.ips {
			pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		if err := c.Status().Update(ctx, pod); err != nil {
			return "", err
		}
	}
	return userKubeconfig(e, "admin", "system:masters")
}

// userKubeconfig writes a kubeconfig for a user of the test's API server.
func userKubeconfig(e *harness.Env, name string, groups ...string) (string, error) {
	u, err := e.Env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", err
	}
	b, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(tempDir, name+".kubeconfig")
	return path, os.WriteFile(path, b, 0o600)
}

// run runs the plugin in-process, as kubectl would run the binary.
func run(t *testing.T, kubeconfig, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = poolctl.Run(ctx, append([]string{"--kubeconfig", kubeconfig}, args...), strings.NewReader(stdin), &out, &errOut)
	t.Logf("kubectl poolguard %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// contains fails the test unless s contains every part.
func contains(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s does not contain %q:\n%s", what, p, s)
		}
	}
}

// row finds the table row that has every field, in order, separated by
// the table's spaces.
func row(t *testing.T, table string, fields ...string) {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Fields(line)
		i := 0
		for _, c := range cells {
			if i < len(fields) && c == fields[i] {
				i++
			}
		}
		if i == len(fields) {
			return
		}
	}
	t.Errorf("no row with %q in:\n%s", fields, table)
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not the JSON of %T: %v\n%s", v, err, s)
	}
	return v
}

func findings(r []poolctl.Finding) []string {
	var out []string
	for _, f := range r {
		s := f.Namespace + "/" + f.Pod + " " + string(f.Kind)
		if f.Family != "" {
			s += " " + f.Family
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// bindViewer creates the chart's viewer ClusterRole and binds it to user.
func bindViewer(t *testing.T, c client.Client, role *rbacv1.ClusterRole, user string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := c.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
}

// storeClient is a client of the local control plane that knows the
// allocator's objects (IPAMClaims, IPAMHistories) besides poolguard's
// types, which the harness's own client knows.
func storeClient(t testing.TB) client.Client {
	t.Helper()
	c, err := harness.Client(controlPlane(t).Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
