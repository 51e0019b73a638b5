package charts_test

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools/calico"
	"poolguard.dev/poolguard/test/harness"
)

// TestCalicoInstall installs the chart in Calico mode next to Calico's
// IPPool (crd.projectcalico.org/v1, the classic datastore) and runs the
// webhook under the chart's own identity: it reads Calico's pools, pins the
// defaults, refuses a namespace-forbidden pool, installs nothing of native
// mode, and closes the excluded namespaces to pool annotations except the
// values the chart allows, with the webhook up and down.
func TestCalicoInstall(t *testing.T) {
	ctx := context.Background()
	gv := calico.GroupVersionCRDv1
	s := installChart(t, func(c *cluster) {
		if _, err := envtest.InstallCRDs(c.cfg, envtest.CRDInstallOptions{Paths: []string{harness.CalicoCRDDir(gv.Group)}}); err != nil {
			t.Fatal(err)
		}
	}, []string{"mode=calico", `calico.allowedPoolAnnotations.kube-system[0]=["infra"]`}, "--skip-crds")
	c := s.c
	pool := func(name string, spec map[string]any) {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		u.SetGroupVersionKind(gv.WithKind(calico.IPPoolKind))
		u.SetName(name)
		must(t, c.admin.Create(ctx, u))
	}
	pool("default-ipv4-ippool", map[string]any{"cidr": "198.18.0.0/16"})
	pool("trusted", map[string]any{"cidr": "198.51.100.0/24", "assignmentMode": "Manual", "namespaceSelector": "kubernetes.io/metadata.name == 'payments'"})
	pool("infra", map[string]any{"cidr": "203.0.113.0/24", "assignmentMode": "Manual"})
	must(t, c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}))

	t.Run("nothing of native mode is installed", func(t *testing.T) {
		var ds appsv1.DaemonSetList
		must(t, c.admin.List(ctx, &ds, client.InNamespace(installNS)))
		crd := &metav1.PartialObjectMetadata{}
		crd.SetGroupVersionKind(apiextensionsGVK)
		if len(ds.Items) != 0 || c.admin.Get(ctx, client.ObjectKey{Name: "ippools.ipam.poolguard.dev"}, crd) == nil {
			t.Fatalf("Calico mode installed the CNI DaemonSet (%d) or poolguard's IPPool CRD", len(ds.Items))
		}
	})
	t.Run("defaults pinned from Calico's pools, under the chart's identity", func(t *testing.T) {
		eventually(t, "pod not pinned to Calico's default pool", func() error {
			p := testPod("shop", "web")
			if err := c.admin.Create(ctx, p, client.DryRunAll); err != nil {
				return err
			}
			if got := p.Annotations[policy.AnnotationIPv4Pools]; got != `["default-ipv4-ippool"]` {
				return refused(nil, "pinned: "+got)
			}
			return nil
		})
	})
	t.Run("a pool the namespace may not use is refused", func(t *testing.T) {
		p := testPod("shop", "sneaky")
		p.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}
		if err := refused(c.admin.Create(ctx, p), `does not allow namespace "shop"`); err != nil {
			t.Fatal(err)
		}
	})
	backDoor := func(t *testing.T) {
		p := testPod("kube-system", "sneaky")
		p.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}
		if err := refused(c.admin.Create(ctx, p), "calico.allowedPoolAnnotations"); err != nil {
			t.Fatalf("a kube-system pod naming the firewall's pool: %v", err)
		}
		ns := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+policy.AnnotationIPv4Pools+`":"[\"trusted\"]"}}}`))
		if err := refused(c.admin.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}}, ns), "calico.allowedPoolAnnotations"); err != nil {
			t.Fatalf("kube-system's default set to the firewall's pool: %v", err)
		}
		ok := testPod("kube-system", "")
		ok.GenerateName = "infra-"
		ok.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["infra"]`}
		must(t, c.admin.Create(ctx, ok))
	}
	t.Run("no back door through excluded namespaces, webhook up", func(t *testing.T) {
		eventually(t, "policy not loaded", func() error {
			p := testPod("kube-system", "probe")
			p.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`}
			return refused(c.admin.Create(ctx, p, client.DryRunAll), "calico.allowedPoolAnnotations")
		})
		backDoor(t)
	})
	s.proc.stop(t)
	t.Run("no back door through excluded namespaces, webhook down", backDoor)
}

var apiextensionsGVK = apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition")
