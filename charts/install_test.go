package charts_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

// The release the install test installs: the names deploy/ uses.
const (
	installRelease = charts.ManifestsRelease
	installNS      = charts.ManifestsNamespace
	installSvc     = installRelease + "-webhook"
	installSA      = "system:serviceaccount:" + installNS + ":" + installRelease + "-webhook"
)

// TestHelmInstall installs the chart with helm into a real kube-apiserver
// (server-side apply, so the API server validates every object), runs
// poolguard-webhook with the args, environment, service account and
// certificate layout of the Deployment the chart installed, and checks
// through the API server that pods are frozen, that a certificate rotation
// costs no admission, that only a cluster admin can opt a namespace out,
// that the immutability rule holds while the webhook is down, and that
// helm upgrade (to warn mode, with IPPools from values) works.
//
// cert-manager's controllers do not run: the test issues the serving
// certificate the chart's Certificate asks for, stores it in the Secret the
// Certificate names, and injects its CA into the webhook configurations
// exactly as cainjector does for the chart's inject-ca-from annotation.
func TestHelmInstall(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t)
	bin := buildWebhook(t)
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: installNS}}); err != nil {
		t.Fatal(err)
	}
	// Free ports for the webhook's listeners, set through the chart's values
	// so that the process listens where the Deployment says.
	webhookPort, metricsPort, exportPort := freePort(t), freePort(t), freePort(t)
	values := []string{
		fmt.Sprintf("webhook.port=%d", webhookPort),
		fmt.Sprintf("webhook.metricsPort=%d", metricsPort),
		fmt.Sprintf("export.port=%d", exportPort),
		fmt.Sprintf("webhook.healthPort=%d", freePort(t)),
		"webhook.logging.encoder=console",
	}

	t.Run("default values pass server-side validation", func(t *testing.T) {
		// Everything the defaults render (the CNI installer DaemonSet and
		// the allocator's RBAC included), created with dryRun=All under
		// another release name: the API server validates each object fully.
		out, err := c.helm.Template(charts.Release{Name: "full", Namespace: installNS})
		if err != nil {
			t.Fatal(err)
		}
		objs, err := charts.Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if err := c.admin.Create(ctx, o, client.DryRunAll); err != nil {
				t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	})

	t.Run("deploy manifests apply server-side", func(t *testing.T) {
		// What `kubectl apply --server-side --dry-run=server -f deploy/...`
		// does: every object of both files, applied with dryRun=All.
		for _, file := range []string{"poolguard.yaml", "poolguard-no-cert-manager.yaml", "poolguard-calico.yaml"} {
			b, err := os.ReadFile(filepath.Join(charts.ManifestsDir(), file))
			must(t, err)
			objs, err := charts.Decode(b)
			must(t, err)
			for _, o := range objs {
				if err := c.admin.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll, client.ForceOwnership, client.FieldOwner("kubectl")); err != nil {
					t.Errorf("deploy/%s: %s %s: %v", file, o.GetKind(), o.GetName(), err)
				}
			}
		}
	})

	t.Run("a first install with an IPPool the CRD refuses fails at its pre-install hook", func(t *testing.T) {
		testFirstInstallRefusesBadPool(ctx, t, c, values)
	})

	// A first install with a pool in values: its pre-install hook creates
	// it before the webhook exists, and the webhook takes it over once it
	// serves (see ippools_test.go).
	if out, err := c.helm.Install(charts.Release{Name: installRelease, Namespace: installNS, Set: append(slices.Clip(values), seededValues...)}, false); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Run("the IPPool from values exists once helm install returns", func(t *testing.T) {
		testIPPoolFromHook(ctx, t, c)
	})

	var dep appsv1.Deployment
	var svc corev1.Service
	var crt cmapi.Certificate
	must(t, c.admin.Get(ctx, client.ObjectKey{Namespace: installNS, Name: installSvc}, &dep))
	must(t, c.admin.Get(ctx, client.ObjectKey{Namespace: installNS, Name: installSvc}, &svc))
	must(t, c.admin.Get(ctx, client.ObjectKey{Namespace: installNS, Name: installSvc}, &crt))
	// The chart, not the test, installed poolguard's CRDs.
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	must(t, c.admin.Get(ctx, client.ObjectKey{Name: "ippools.ipam.poolguard.dev"}, crd))

	// cert-manager's part: issue, store, mount, inject.
	ca := newTestCA(t)
	secretName := ""
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "certs" && v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	if secretName != crt.Spec.SecretName {
		t.Fatalf("the Deployment mounts Secret %q, the Certificate writes %q", secretName, crt.Spec.SecretName)
	}
	data := ca.issue(t, &crt)
	must(t, c.admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: crt.Spec.SecretName},
		Type:       corev1.SecretTypeTLS, Data: data,
	}))
	vol := &secretVolume{dir: t.TempDir()}
	vol.update(t, data)
	injectCA(ctx, t, c.admin, installRelease)

	proxyService(t, &svc, "webhook", &dep)
	saConfig := c.kubeconfig(t, installSA, "system:serviceaccounts", "system:serviceaccounts:"+installNS)
	proc := runWebhook(t, bin, &dep, saConfig, vol.dir)

	t.Run("the IPPool from values of a first install is applied once the webhook serves", func(t *testing.T) {
		testIPPoolsFromValues(ctx, t, c, proc)
	})

	pool := "trusted"
	payments := "payments"
	t.Run("pod frozen by the webhook", func(t *testing.T) {
		makeIPPool(ctx, t, c.admin, pool, "198.51.100.0/24", payments)
		createWhenPoolsKnown(ctx, t, c.admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: payments, Annotations: map[string]string{policy.AnnotationIPv4Pools: `["` + pool + `"]`},
		}})
		p := testPod(payments, "app")
		must(t, c.admin.Create(ctx, p))
		if p.Annotations[policy.AnnotationIPv4Pools] != `["`+pool+`"]` {
			t.Fatalf("pod not frozen to its namespace's default: %v", p.Annotations)
		}
		prov, err := policy.ParseProvenance(p.Annotations[policy.AnnotationProvenance])
		if err != nil || prov.IPv4 != policy.SourceNamespace {
			t.Fatalf("provenance %q: %+v %v", p.Annotations[policy.AnnotationProvenance], prov, err)
		}
	})

	t.Run("forbidden pool denied", func(t *testing.T) {
		must(t, c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}))
		p := testPod("elsewhere", "sneaky")
		p.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["` + pool + `"]`}
		err := c.admin.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), pool) {
			t.Fatalf("pod in a namespace the pool does not select was admitted (err %v)", err)
		}
	})

	t.Run("each identity has the access it needs and no more", func(t *testing.T) {
		testAccess(ctx, t, c)
	})

	t.Run("metrics need a token allowed to get /metrics", func(t *testing.T) {
		testMetricsAuth(ctx, t, c, metricsPort, ca.certPEM)
	})

	t.Run("the live export needs a token bound to the export-reader", func(t *testing.T) {
		testExportInstalled(ctx, t, c, exportPort, ca.certPEM, pool, "198.51.100.0/24")
	})

	t.Run("the allocator's controllers are elected leader", func(t *testing.T) {
		// --leader-elect and --allocator-controllers from the Deployment,
		// the lease in POD_NAMESPACE, under the chart's Role.
		var lease coordinationv1.Lease
		var err error
		for range 100 {
			if err = c.admin.Get(ctx, client.ObjectKey{Namespace: installNS, Name: "poolguard.ipam.poolguard.dev"}, &lease); err == nil && lease.Spec.HolderIdentity != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || lease.Spec.HolderIdentity == nil {
			t.Fatalf("no leader lease in %s after 10s: %v\n%s", installNS, err, proc.log.String())
		}
		if !strings.Contains(proc.log.String(), "ippool-status") {
			t.Errorf("the IPPool status controller did not start:\n%s", proc.log.String())
		}
	})

	t.Run("the node plugin may only mark a pool in use", func(t *testing.T) {
		testNodePluginPools(ctx, t, c, pool)
	})
	t.Run("a node's plugin writes only its own node's claims, affinity and slots", func(t *testing.T) {
		testNodePluginIPAM(ctx, t, c)
	})

	t.Run("certificate rotation loses no admission", func(t *testing.T) {
		rotateUnderLoad(ctx, t, c.admin, ca, &crt, vol, webhookPort, payments)
	})

	t.Run("only a cluster admin can opt a namespace out", func(t *testing.T) {
		testOptOut(ctx, t, c)
	})

	t.Run("immutability holds while the webhook is down", func(t *testing.T) {
		p := testPod(payments, "steady")
		must(t, c.admin.Create(ctx, p))
		assertNoForbidden(t, proc)
		proc.stop(t)

		patch := client.MergeFrom(p.DeepCopy())
		p.Annotations[policy.AnnotationIPv4Pools] = `["elsewhere"]`
		err := c.admin.Patch(ctx, p, patch)
		if err == nil || !strings.Contains(err.Error(), "frozen when a pod is created") || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
			t.Fatalf("frozen annotation changed while the webhook was down (err %v)", err)
		}
		// What the kubelet does: a status update that leaves the frozen
		// annotations alone never reaches the webhook, so it succeeds.
		must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(p), p))
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()})
		if err := c.admin.Status().Update(ctx, p); err != nil {
			t.Fatalf("kubelet-style status update failed while the webhook was down: %v", err)
		}
		// And creation fails closed.
		if err := c.admin.Create(ctx, testPod(payments, "while-down")); err == nil {
			t.Fatalf("pod created without the webhook: failurePolicy is not Fail")
		}
	})

	// Back up: the processes belong to the top-level test, not a subtest.
	proc = runWebhook(t, bin, &dep, saConfig, vol.dir)

	t.Run("helm upgrade to warn mode with IPPools from values, one refused", func(t *testing.T) {
		upgraded := append(values, "webhook.enforcement=warn",
			"ippools[0].name=general", "ippools[0].spec.cidr=203.0.113.0/24")
		upgraded = append(upgraded, badPoolValues(1)...)
		if out, err := c.helm.Install(charts.Release{Name: installRelease, Namespace: installNS, Set: upgraded}, true); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		// The running webhook applies the pool when the ConfigMap changes.
		var p v1alpha1.IPPool
		waitFor(t, proc, "IPPool general from the upgrade's values", func() bool {
			return c.admin.Get(ctx, client.ObjectKey{Name: "general"}, &p) == nil
		})
		if p.Spec.AssignmentMode == "" || p.Spec.BlockSize != 26 {
			t.Errorf("IPPool from values did not pass the mutating webhook: %+v", p.Spec)
		}
		if _, hook := p.Annotations["helm.sh/hook"]; hook {
			t.Errorf("IPPool general was created by a hook on upgrade: %v", p.Annotations)
		}
		testIPPoolRefusedOnUpgrade(ctx, t, c, proc)
		var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
		must(t, c.admin.Get(ctx, client.ObjectKey{Name: installRelease + "-frozen-pools"}, &b))
		if len(b.Spec.ValidationActions) == 0 || b.Spec.ValidationActions[0] != admissionregistrationv1.Warn {
			t.Errorf("binding actions after upgrade: %v", b.Spec.ValidationActions)
		}
		// The upgrade kept the injected caBundle (it is not the chart's).
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		must(t, c.admin.Get(ctx, client.ObjectKey{Name: installRelease}, &v))
		if len(v.Webhooks[0].ClientConfig.CABundle) == 0 {
			t.Fatalf("helm upgrade dropped the injected caBundle")
		}

	})

	// Roll the process to the upgraded Deployment's args.
	must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(&dep), &dep))
	proc.stop(t)
	proc = runWebhook(t, bin, &dep, saConfig, vol.dir)
	t.Run("warn mode after the upgrade admits with a warning", func(t *testing.T) {
		warns := &harness.WarningRecorder{}
		cfg := rest.CopyConfig(c.cfg)
		cfg.WarningHandler = warns
		wc, err := client.New(cfg, client.Options{Scheme: c.admin.Scheme()})
		must(t, err)
		bad := testPod(payments, "")
		bad.GenerateName = "typo-"
		bad.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["no-such-pool"]`}
		if err := wc.Create(ctx, bad, client.DryRunAll); err != nil {
			t.Fatalf("warn mode denied: %v", err)
		}
		if w := strings.Join(warns.Take(), "\n"); !strings.Contains(w, "would deny") || !strings.Contains(w, "no-such-pool") {
			t.Fatalf("warn mode admitted without the warning; warnings: %q", w)
		}
	})
	assertNoForbidden(t, proc)
	proc.stop(t)

	// Without cert-manager: a fresh release whose webhook keeps its own
	// certificate. Nothing of the test's CA or injection is involved.
	if out, err := c.helm.Run(nil, "uninstall", installRelease, "--namespace", installNS, "--wait"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	must(t, c.admin.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: crt.Spec.SecretName}}))
	internal := append(values, "certificates.mode=internal")
	if out, err := c.helm.Install(charts.Release{Name: installRelease, Namespace: installNS, Set: internal}, false); err != nil {
		t.Fatalf("helm install without cert-manager: %v\n%s", err, out)
	}
	must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(&dep), &dep))
	must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(&svc), &svc))
	proxyService(t, &svc, "webhook", &dep)
	// The emptyDir the rotator writes into.
	proc = runWebhook(t, bin, &dep, saConfig, t.TempDir())

	t.Run("without cert-manager the webhook issues and injects its own certificate", func(t *testing.T) {
		var sec corev1.Secret
		must(t, c.admin.Get(ctx, client.ObjectKey{Namespace: installNS, Name: installSvc + "-tls"}, &sec))
		var m admissionregistrationv1.MutatingWebhookConfiguration
		must(t, c.admin.Get(ctx, client.ObjectKey{Name: installRelease}, &m))
		if string(m.Webhooks[0].ClientConfig.CABundle) != string(sec.Data["ca-bundle.crt"]) {
			t.Fatalf("caBundle not injected from the rotator's Secret")
		}
		p := testPod(payments, "internal-certs")
		must(t, c.admin.Create(ctx, p))
		if _, ok := p.Annotations[policy.AnnotationProvenance]; !ok {
			t.Fatalf("pod not frozen: %v", p.Annotations)
		}
		// A re-render is identical (no certificate material in the chart),
		// and an upgrade keeps the webhook working with the same Secret.
		rv := sec.ResourceVersion
		if out, err := c.helm.Install(charts.Release{Name: installRelease, Namespace: installNS, Set: append(internal, "webhook.timeoutSeconds=7")}, true); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		must(t, c.admin.Create(ctx, testPod(payments, "after-upgrade")))
		must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(&sec), &sec))
		if sec.ResourceVersion != rv {
			t.Errorf("helm upgrade changed the certificate Secret")
		}
		assertNoForbidden(t, proc)
	})
}

// access is one access question: may user do verb on resource?
type access struct {
	verb, group, resource, namespace, name string
	allowed                                bool
}

// testAccess asks the API server's authorizer (SubjectAccessReview) about
// the chart's service accounts, as installed: least privilege, per identity.
func testAccess(ctx context.Context, t *testing.T, c *cluster) {
	sa := func(name string) string { return "system:serviceaccount:" + installNS + ":" + name }
	cases := map[string][]access{
		sa(installRelease + "-webhook"): {
			{"list", "ipam.poolguard.dev", "ippools", "", "", true},
			{"watch", "", "namespaces", "", "", true},
			{"create", "events.k8s.io", "events", "default", "", true},
			{"update", "coordination.k8s.io", "leases", installNS, "poolguard.ipam.poolguard.dev", true},
			{"update", "coordination.k8s.io", "leases", installNS, "someone-elses-lease", false},
			{"patch", "ipam.poolguard.dev", "ippools/status", "", "", true},          // status controller
			{"delete", "ipam.poolguard.dev", "ipamblocks", "", "", true},             // garbage collector
			{"update", "ipam.poolguard.dev", "ipamhistories", "", "", true},          // the history recorder
			{"delete", "ipam.poolguard.dev", "ipamhistories", "", "", true},          // ...and its expiry
			{"create", "authentication.k8s.io", "tokenreviews", "", "", true},        // metrics: who is the scraper
			{"create", "authorization.k8s.io", "subjectaccessreviews", "", "", true}, // metrics: may it get /metrics
			{"get", "authentication.k8s.io", "tokenreviews", "", "", false},
			{"create", "ipam.poolguard.dev", "ippools", "", "", false},
			{"create", "ipam.poolguard.dev", "ippools", "", seededPool, true}, // pools from values, applied by the webhook
			{"create", "ipam.poolguard.dev", "ippools", "", "someone-elses-pool", false},
			{"delete", "ipam.poolguard.dev", "ippools", "", "", false},
			{"watch", "", "configmaps", installNS, installRelease + "-ippools", true}, // ...read from this ConfigMap
			{"get", "", "configmaps", installNS, "someone-elses-config", false},
			{"list", "", "configmaps", "", "", false},
			{"get", "", "secrets", installNS, installRelease + "-webhook-tls", false}, // cert-manager mode: mounted, not read
			{"update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", installRelease, false},
			{"create", "", "pods", "default", "", false},
		},
		sa(installRelease + "-cni"): {
			{"get", "", "pods", "default", "p", true},
			{"get", "", "namespaces", "", "default", true},
			{"get", "", "nodes", "", "n", true},
			{"list", "ipam.poolguard.dev", "ippools", "", "", true},
			{"create", "ipam.poolguard.dev", "ipamblocks", "", "", true},
			{"update", "ipam.poolguard.dev", "ipamaffinities", "", "", true},
			{"delete", "ipam.poolguard.dev", "ipamclaims", "", "", true},
			{"list", "", "pods", "", "", false},
			{"update", "", "pods", "default", "p", false},
			{"get", "", "secrets", "default", "s", false},
			{"create", "ipam.poolguard.dev", "ippools", "", "", false},
			{"delete", "ipam.poolguard.dev", "ippools", "", "", false},
			{"update", "ipam.poolguard.dev", "ippools/status", "", "", false},
			{"create", "", "serviceaccounts/token", installNS, installRelease + "-cni", false}, // cannot renew its own credential
			{"create", "ipam.poolguard.dev", "ipamhistories", "", "", false},                   // a node cannot write the history
			{"update", "ipam.poolguard.dev", "ipamhistories", "", "", false},
			{"delete", "ipam.poolguard.dev", "ipamhistories", "", "", false},
		},
		// The installer: node-bound tokens of the plugin's account, nothing else.
		sa(installRelease + "-cni-installer"): {
			{"create", "", "serviceaccounts/token", installNS, installRelease + "-cni", true},
			{"get", "", "nodes", "", "n", true},
			{"create", "", "serviceaccounts/token", installNS, installRelease + "-webhook", false},
			{"create", "", "serviceaccounts/token", installNS, installRelease + "-cni-installer", false},
			{"create", "", "serviceaccounts/token", "default", installRelease + "-cni", false},
			{"create", "", "serviceaccounts/token", installNS, "", false},
			{"get", "", "serviceaccounts", installNS, installRelease + "-cni", false},
			{"list", "", "nodes", "", "", false},
			{"update", "", "nodes", "", "n", false},
			{"get", "", "pods", "default", "p", false},
			{"get", "", "secrets", installNS, "s", false},
			{"list", "ipam.poolguard.dev", "ippools", "", "", false},
		},
	}
	for user, checks := range cases {
		for _, a := range checks {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   user,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + installNS, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: a.verb, Group: a.group, Resource: strings.Split(a.resource, "/")[0], Namespace: a.namespace, Name: a.name,
					Subresource: func() string { _, sub, _ := strings.Cut(a.resource, "/"); return sub }(),
				},
			}}
			must(t, c.admin.Create(ctx, sar))
			if sar.Status.Allowed != a.allowed {
				t.Errorf("%s %s %s.%s (ns %q, name %q): allowed=%v, want %v", user, a.verb, a.resource, a.group, a.namespace, a.name, sar.Status.Allowed, a.allowed)
			}
		}
	}
}

// testNodePluginPools: as the node plugin, adding the allocations finalizer
// to an IPPool works (what the allocator does before a pool's first
// allocation); changing the pool or dropping a finalizer does not.
func testNodePluginPools(ctx context.Context, t *testing.T, c *cluster, pool string) {
	plugin := c.clientAs(t, "system:serviceaccount:"+installNS+":"+installRelease+"-cni", "system:serviceaccounts", "system:serviceaccounts:"+installNS)
	var p v1alpha1.IPPool
	must(t, plugin.Get(ctx, client.ObjectKey{Name: pool}, &p))
	p.Finalizers = append(p.Finalizers, v1alpha1.FinalizerAllocations)
	if err := plugin.Update(ctx, &p); err != nil {
		t.Fatalf("the node plugin could not add the allocations finalizer: %v", err)
	}
	p.Spec.Disabled = !p.Spec.Disabled
	if err := plugin.Update(ctx, &p); err == nil || !strings.Contains(err.Error(), "may not change an IPPool") {
		t.Fatalf("the node plugin changed a pool's spec (err %v)", err)
	}
	must(t, plugin.Get(ctx, client.ObjectKey{Name: pool}, &p))
	p.Finalizers = nil
	if err := plugin.Update(ctx, &p); err == nil || !strings.Contains(err.Error(), "may only add") {
		t.Fatalf("the node plugin removed a pool's finalizer (err %v)", err)
	}
	// Leave the pool as it was: the admin (the garbage collector's role)
	// removes the finalizer.
	must(t, c.admin.Get(ctx, client.ObjectKey{Name: pool}, &p))
	p.Finalizers = nil
	must(t, c.admin.Update(ctx, &p))
}

// assertNoForbidden fails when the webhook process logged an RBAC denial:
// the chart's RBAC must grant everything the webhook uses.
func assertNoForbidden(t *testing.T, p *webhookProcess) {
	t.Helper()
	for _, line := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(line, "forbidden") || strings.Contains(line, "Forbidden") {
			t.Errorf("the webhook's service account lacked a permission: %s", line)
		}
	}
}

// rotateUnderLoad creates pods from two goroutines while the serving
// certificate is replaced three times, kubelet-style, and waits each time
// until the webhook serves the new one. Not one admission may fail.
func rotateUnderLoad(ctx context.Context, t *testing.T, c client.Client, ca *testCA, crt *cmapi.Certificate, vol *secretVolume, port int, ns string) {
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := testPod(ns, fmt.Sprintf("rot-%d-%d", w, i))
				if err := c.Create(ctx, p); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if _, frozen := p.Annotations[policy.AnnotationProvenance]; !frozen {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, "pod created unfrozen: "+p.Name)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for range 3 {
		time.Sleep(time.Second)
		data := ca.issue(t, crt)
		vol.update(t, data)
		want := serialOf(t, data[corev1.TLSCertKey])
		deadline := time.Now().Add(30 * time.Second)
		for servedSerial(t, port) != want {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("the webhook still serves the old certificate 30s after rotation")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d pods admitted across 3 rotations, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d admissions failed during rotation; first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 10 {
		t.Fatalf("only %d pods created during rotation: the load proves nothing", ok.Load())
	}
}

// testOptOut: a user who may update namespaces cluster-wide still cannot
// opt one out; a cluster admin can, and then its pods are left alone; the
// chart's ClusterRole delegates the right; removing the label needs nothing.
func testOptOut(ctx context.Context, t *testing.T, c *cluster) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}}
	must(t, c.admin.Create(ctx, ns))
	editor := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-editor"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "create", "update", "patch"}}},
	}
	must(t, c.admin.Create(ctx, editor))
	bind := func(name, role string) {
		must(t, c.admin.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}},
		}))
	}
	bind("alice-namespace-editor", editor.Name)
	alice := c.clientAs(t, "alice")

	label := func(cl client.Client, value *string) error {
		var cur corev1.Namespace
		if err := cl.Get(ctx, client.ObjectKeyFromObject(ns), &cur); err != nil {
			return err
		}
		patch := client.MergeFrom(cur.DeepCopy())
		if value == nil {
			delete(cur.Labels, policy.LabelOptOut)
		} else {
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			cur.Labels[policy.LabelOptOut] = *value
		}
		return cl.Patch(ctx, &cur, patch)
	}
	yes := "true"
	born := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "born-opted-out", Labels: map[string]string{policy.LabelOptOut: yes}}}
	if err := alice.Create(ctx, born); err == nil || !strings.Contains(err.Error(), "only a cluster administrator") {
		t.Fatalf("a namespace editor created an opted-out namespace (err %v)", err)
	}
	err := label(alice, &yes)
	if err == nil || !strings.Contains(err.Error(), "only a cluster administrator") {
		t.Fatalf("a namespace editor opted out (err %v)", err)
	}
	must(t, label(c.admin, &yes))
	// The API server matches namespaceSelectors against its namespace
	// informer, which sees the new label a moment later.
	var p *corev1.Pod
	for range 100 {
		p = testPod(ns.Name, "unguarded")
		must(t, c.admin.Create(ctx, p, client.DryRunAll))
		if _, frozen := p.Annotations[policy.AnnotationProvenance]; !frozen {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, frozen := p.Annotations[policy.AnnotationProvenance]; frozen {
		t.Fatalf("pod in an opted-out namespace is still frozen after 5s: %v", p.Annotations)
	}
	must(t, label(alice, nil))
	bind("alice-opt-out", installRelease+"-namespace-opt-out")
	if err := label(alice, &yes); err != nil {
		t.Fatalf("the chart's opt-out ClusterRole does not grant the opt-out: %v", err)
	}
}

// createWhenPoolsKnown creates a namespace naming pools, retrying while
// the webhook's informer has not yet seen a pool created a moment ago.
func createWhenPoolsKnown(ctx context.Context, t *testing.T, c client.Client, ns *corev1.Namespace) {
	t.Helper()
	var err error
	for range 200 {
		if err = c.Create(ctx, ns.DeepCopy()); err == nil || !strings.Contains(err.Error(), "does not exist") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(t, err)
}

func makeIPPool(ctx context.Context, t *testing.T, c client.Client, name, cidr string, namespaces ...string) {
	t.Helper()
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPPoolSpec{CIDR: cidr, AssignmentMode: v1alpha1.AssignmentManual}}
	p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: policy.LabelNamespaceName, Operator: metav1.LabelSelectorOpIn, Values: namespaces,
	}}}
	must(t, c.Create(ctx, p))
}

func testPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
