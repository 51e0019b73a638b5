package charts_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/webhook"
)

// attackerSetup is the chart installed into a local control plane with the
// real poolguard-webhook running as its Deployment would: the webhook
// configurations and admission policies an attacker meets in a cluster.
type attackerSetup struct {
	c       *cluster
	cs      *kubernetes.Clientset
	bin     string
	dep     appsv1.Deployment
	saCfg   string
	certDir string
	port    int
	proc    *webhookProcess
}

func installForAttack(t *testing.T) *attackerSetup {
	return installChart(t, nil, nil)
}

// installChart installs the chart with the default values plus extra
// (and helm flags helmArgs), after prepare has set up the cluster, and
// runs the webhook as its Deployment would.
func installChart(t *testing.T, prepare func(*cluster), extra []string, helmArgs ...string) *attackerSetup {
	t.Helper()
	ctx := context.Background()
	s := &attackerSetup{c: startCluster(t), bin: buildWebhook(t), certDir: t.TempDir()}
	if prepare != nil {
		prepare(s.c)
	}
	must(t, s.c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: installNS}}))
	s.port = freePort(t)
	values := []string{
		fmt.Sprintf("webhook.port=%d", s.port),
		fmt.Sprintf("webhook.metricsPort=%d", freePort(t)),
		fmt.Sprintf("webhook.healthPort=%d", freePort(t)),
		fmt.Sprintf("export.port=%d", freePort(t)),
		"webhook.logging.encoder=console",
		// The webhook keeps its own certificate: nothing of cert-manager
		// is needed to meet the configurations as installed.
		"certificates.mode=internal",
	}
	values = append(values, extra...)
	if out, err := s.c.helm.Install(charts.Release{Name: installRelease, Namespace: installNS, Set: values}, false, helmArgs...); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	var svc corev1.Service
	must(t, s.c.admin.Get(ctx, client.ObjectKey{Namespace: installNS, Name: installSvc}, &s.dep))
	must(t, s.c.admin.Get(ctx, client.ObjectKey{Namespace: installNS, Name: installSvc}, &svc))
	proxyService(t, &svc, "webhook", &s.dep)
	s.saCfg = s.c.kubeconfig(t, installSA, "system:serviceaccounts", "system:serviceaccounts:"+installNS)
	s.proc = runWebhook(t, s.bin, &s.dep, s.saCfg, s.certDir)
	cs, err := kubernetes.NewForConfig(s.c.cfg)
	must(t, err)
	s.cs = cs
	return s
}

// eventually retries check until it passes or ten seconds pass: the API
// server loads admission policies and namespace labels from its informers a
// moment after they change.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	var err error
	for range 200 {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// refused fails unless err is a refusal whose message says want.
func refused(err error, want string) error {
	if err == nil {
		return fmt.Errorf("allowed; want a refusal saying %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		return fmt.Errorf("refused with %q; want %q", err, want)
	}
	return nil
}

// TestAttackerPaths tries, as a pod author, a namespace editor, a
// scheduler-like client and anyone who can reach the webhook's port would,
// every path that writes a pod's or a namespace's pool metadata around the
// freeze, with the webhook up and with it down.
func TestAttackerPaths(t *testing.T) {
	ctx := context.Background()
	s := installForAttack(t)
	c := s.c

	pool := "trusted"
	makeIPPool(ctx, t, c.admin, pool, "198.51.100.0/24", "payments")
	createWhenPoolsKnown(ctx, t, c.admin, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "payments", Annotations: map[string]string{policy.AnnotationIPv4Pools: `["` + pool + `"]`},
	}})
	must(t, c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}))
	must(t, c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}}))
	optOut := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+policy.LabelOptOut+`":"true"}}}`))
	must(t, c.admin.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}}, optOut))

	// mallory may write namespaces' status and finalizers, nothing else: a
	// right a controller might hold, which must not buy an opt-out.
	must(t, c.admin.Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-status-writer"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"namespaces/status", "namespaces/finalize"}, Verbs: []string{"update", "patch"}},
		},
	}))
	must(t, c.admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mallory-namespace-status"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "namespace-status-writer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
	}))
	malloryCfg := *s.c.cfg
	malloryCfg.Impersonate.UserName = "mallory"
	mallory, err := kubernetes.NewForConfig(&malloryCfg)
	must(t, err)

	// The admission policies are loaded by the API server a moment after
	// helm creates them (all at once): wait for the immutability policy.
	probe := testPod("payments", "probe")
	must(t, c.admin.Create(ctx, probe))
	eventually(t, "the admission policies never took effect", func() error {
		edit := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+policy.AnnotationIPv4Pools+`":"[\"x\"]"}}}`))
		return refused(c.admin.Patch(ctx, probe.DeepCopy(), edit, client.DryRunAll), "ValidatingAdmissionPolicy")
	})

	// Pods made while the webhook is up, one per round, not yet bound.
	unbound := map[string]*corev1.Pod{}
	for _, round := range []string{"up", "down"} {
		p := testPod("payments", "unbound-"+round)
		must(t, c.admin.Create(ctx, p))
		if _, ok := p.Annotations[policy.AnnotationProvenance]; !ok {
			t.Fatalf("pod not frozen: %v", p.Annotations)
		}
		unbound[round] = p
	}

	attacks := func(t *testing.T, round string) {
		p := unbound[round]
		t.Run("a Binding may not rewrite the frozen pools", func(t *testing.T) {
			b := &corev1.Binding{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace,
					Annotations: map[string]string{policy.AnnotationIPv4Pools: `["elsewhere"]`, policy.AnnotationProvenance: `{"ipv4pools":"pod","ipv6pools":"default"}`}},
				Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"},
			}
			if err := refused(s.cs.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{}), "frozen"); err != nil {
				t.Fatal(err)
			}
			var got corev1.Pod
			must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(p), &got))
			if got.Annotations[policy.AnnotationIPv4Pools] != p.Annotations[policy.AnnotationIPv4Pools] || got.Spec.NodeName != "" {
				t.Fatalf("the refused Binding changed the pod: %v on %q", got.Annotations, got.Spec.NodeName)
			}
		})
		t.Run("a plain Binding still binds", func(t *testing.T) {
			b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace,
				Annotations: map[string]string{"scheduler.example/zone": "a"}},
				Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}
			must(t, s.cs.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{}))
		})
		t.Run("namespaces/status may not opt a namespace out", func(t *testing.T) {
			ns, err := mallory.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
			must(t, err)
			ns.Labels[policy.LabelOptOut] = "true"
			_, err = mallory.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
			if err := refused(err, "only a cluster administrator"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("namespaces/finalize may not opt a namespace out", func(t *testing.T) {
			ns, err := mallory.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
			must(t, err)
			ns.Labels[policy.LabelOptOut] = "true"
			_, err = mallory.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
			if err := refused(err, "only a cluster administrator"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("namespaces/status may not store a forbidden default", func(t *testing.T) {
			want := "does not allow namespace"
			if round == "down" {
				want = "failed calling webhook"
			}
			ns, err := mallory.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
			must(t, err)
			ns.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["` + pool + `"]`}
			_, err = mallory.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
			if err := refused(err, want); err != nil {
				t.Fatal(err)
			}
			ns, err = mallory.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
			must(t, err)
			ns.Annotations = map[string]string{policy.AnnotationIPv4Pools: `not a list`}
			_, err = mallory.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{})
			if round == "up" {
				want = "must be a JSON list"
			}
			if err := refused(err, want); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("namespaces/status may not drop an opt-out and set a default in one write", func(t *testing.T) {
			// The API server matches a subresource against the labels
			// stored: "legacy" is opted out there.
			want := "does not allow namespace"
			if round == "down" {
				want = "failed calling webhook"
			}
			ns, err := mallory.CoreV1().Namespaces().Get(ctx, "legacy", metav1.GetOptions{})
			must(t, err)
			delete(ns.Labels, policy.LabelOptOut)
			ns.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["` + pool + `"]`}
			_, err = mallory.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
			if err := refused(err, want); err != nil {
				t.Fatal(err)
			}
		})
		for _, ns := range []string{"kube-system", installNS, "legacy"} {
			t.Run("no forged provenance in "+ns, func(t *testing.T) {
				forged := testPod(ns, "forged-"+round)
				forged.Annotations = map[string]string{
					policy.AnnotationIPv4Pools:  `["` + pool + `"]`,
					policy.AnnotationProvenance: `{"ipv4pools":"pod","ipv6pools":"default"}`,
				}
				if err := refused(c.admin.Create(ctx, forged), "written by poolguard alone"); err != nil {
					t.Fatal(err)
				}
				// Without the provenance the pod starts (the plugin gives
				// it the fail-safe pools), and the provenance cannot be
				// added afterwards.
				plain := testPod(ns, "plain-"+round)
				must(t, c.admin.Create(ctx, plain))
				add := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+policy.AnnotationProvenance+`":"{\"ipv4pools\":\"default\",\"ipv6pools\":\"default\"}"}}}`))
				// Refused by the immutability policy or the provenance
				// policy, whichever the API server asks first.
				if err := refused(c.admin.Patch(ctx, plain, add), policy.AnnotationProvenance); err != nil {
					t.Fatal(err)
				}
			})
		}
	}

	t.Run("webhook up", func(t *testing.T) { attacks(t, "up") })

	t.Run("a forged AdmissionReview records nothing", func(t *testing.T) {
		forgedReview(ctx, t, s)
	})

	s.proc.stop(t)
	t.Run("webhook down", func(t *testing.T) {
		attacks(t, "down")
		t.Run("label edits of a namespace without a default need no webhook", func(t *testing.T) {
			patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"blue"}}}`))
			must(t, c.admin.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, patch))
			err := c.admin.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "payments"}}, patch)
			if err := refused(err, "failed calling webhook"); err != nil {
				t.Fatalf("a label edit of a namespace with a default, webhook down: %v", err)
			}
		})
	})
}

// forgedReview posts a hand-made AdmissionReview straight to the webhook's
// port, about a pod in kube-system (a namespace the API server never sends),
// naming a pool the namespace may not use; then has the API server deny a
// genuine request in payments. The genuine denial's event appears in
// payments, readable by the namespace's owner; the forged one leaves none.
func forgedReview(ctx context.Context, t *testing.T, s *attackerSetup) {
	pod := testPod("kube-system", "forged")
	pod.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["trusted"]`, policy.AnnotationProvenance: `{"ipv4pools":"pod","ipv6pools":"default"}`}
	raw, err := json.Marshal(pod)
	must(t, err)
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "forged-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "kube-system", Name: "forged",
			Operation: admissionv1.Create, UserInfo: authenticationv1.UserInfo{Username: "the attacker's chosen words"},
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	must(t, err)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the attacker does not check
	resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d%s", s.port, webhook.PathValidatePod), "application/json", bytes.NewReader(body))
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the forged review was not answered (HTTP %d); the test needs an answered one", resp.StatusCode)
	}

	bad := testPod("payments", "typo")
	bad.Annotations = map[string]string{policy.AnnotationIPv4Pools: `["no-such-pool"]`}
	if err := refused(s.c.admin.Create(ctx, bad), "no-such-pool"); err != nil {
		t.Fatal(err)
	}
	// The namespace's owner reads its events with namespace-scoped rights.
	owner := s.c.clientAs(t, "payments-owner")
	must(t, s.c.admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "owner"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "event-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "payments-owner"}},
	}))
	must(t, s.c.admin.Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "event-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list"}}},
	}))
	eventually(t, "no PoolsDenied event in payments", func() error {
		var evs corev1.EventList
		if err := owner.List(ctx, &evs, client.InNamespace("payments")); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == policy.ReasonDenied && strings.Contains(e.Message, "no-such-pool") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none about the denial", len(evs.Items))
	})
	var all corev1.EventList
	must(t, s.c.admin.List(ctx, &all))
	for _, e := range all.Items {
		if e.Reason == policy.ReasonDenied && (e.Namespace == "kube-system" || e.Namespace == "default" || strings.Contains(e.Message, "chosen words")) {
			t.Errorf("event from a forged review, or outside the namespace concerned: %s/%s %q", e.Namespace, e.Name, e.Message)
		}
	}
}

// TestEveryServedSubresourceIsGuarded asks the API server which pod and
// namespace subresources it serves and with which verbs, and fails when one
// that can write (create, update, patch) is not matched by the chart's
// webhook configuration and by its admission policies. A subresource added
// in a later Kubernetes release cannot slip through unnoticed.
func TestEveryServedSubresourceIsGuarded(t *testing.T) {
	c := startCluster(t)
	cs, err := kubernetes.NewForConfig(c.cfg)
	must(t, err)
	list, err := cs.Discovery().ServerResourcesForGroupVersion("v1")
	must(t, err)

	r := render(t)
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	decodeStrict(t, r.get(t, "ValidatingWebhookConfiguration", fullname), &vwc)
	hooks := map[string][]admissionregistrationv1.RuleWithOperations{}
	for _, w := range vwc.Webhooks {
		hooks[w.Name] = w.Rules
	}
	policies := map[string][]admissionregistrationv1.RuleWithOperations{}
	for _, name := range []string{fullname + "-frozen-pools", fullname + "-namespace-opt-out"} {
		var vap admissionregistrationv1.ValidatingAdmissionPolicy
		decodeStrict(t, r.get(t, "ValidatingAdmissionPolicy", name), &vap)
		for _, rr := range vap.Spec.MatchConstraints.ResourceRules {
			policies[name] = append(policies[name], rr.RuleWithOperations)
		}
	}
	// Who must see a write to each parent's metadata.
	guards := map[string]struct {
		webhooks, policies map[admissionregistrationv1.OperationType]string
	}{
		"pods": {
			webhooks: map[admissionregistrationv1.OperationType]string{
				admissionregistrationv1.Create: "subresources.pods.ipam.poolguard.dev",
				admissionregistrationv1.Update: "frozen.pods.ipam.poolguard.dev",
			},
			policies: map[admissionregistrationv1.OperationType]string{
				admissionregistrationv1.Create: fullname + "-frozen-pools",
				admissionregistrationv1.Update: fullname + "-frozen-pools",
			},
		},
		"namespaces": {
			webhooks: map[admissionregistrationv1.OperationType]string{
				// No namespace subresource takes a create today; one that
				// does must be guarded before this test passes.
				admissionregistrationv1.Create: "namespaces.ipam.poolguard.dev",
				admissionregistrationv1.Update: webhook.HookNamespaceSubresources,
			},
			policies: map[admissionregistrationv1.OperationType]string{
				admissionregistrationv1.Create: fullname + "-namespace-opt-out",
				admissionregistrationv1.Update: fullname + "-namespace-opt-out",
			},
		},
	}
	checked := 0
	for _, res := range list.APIResources {
		parent, sub, ok := strings.Cut(res.Name, "/")
		g, guarded := guards[parent]
		if !ok || !guarded {
			continue
		}
		var ops []admissionregistrationv1.OperationType
		for _, v := range res.Verbs {
			switch v {
			case "create":
				ops = append(ops, admissionregistrationv1.Create)
			case "update", "patch":
				ops = append(ops, admissionregistrationv1.Update)
			}
		}
		for _, op := range ops {
			checked++
			if !rulesMatch(hooks[g.webhooks[op]], parent, sub, op) {
				t.Errorf("%s %s is served but webhook %s does not see it", op, res.Name, g.webhooks[op])
			}
			if !rulesMatch(policies[g.policies[op]], parent, sub, op) {
				t.Errorf("%s %s is served but policy %s does not see it", op, res.Name, g.policies[op])
			}
		}
	}
	// pods/binding, pods/eviction (create); pods/status,
	// pods/ephemeralcontainers, pods/resize, namespaces/status,
	// namespaces/finalize (update, patch) at the least.
	if checked < 7 {
		t.Fatalf("discovery listed only %d writable pod and namespace subresource operations: %+v", checked, list.APIResources)
	}
}

// rulesMatch reports whether admission rules match a write to a
// subresource, as the API server matches them (wildcards included).
func rulesMatch(rules []admissionregistrationv1.RuleWithOperations, parent, sub string, op admissionregistrationv1.OperationType) bool {
	for _, r := range rules {
		opOK := false
		for _, o := range r.Operations {
			opOK = opOK || o == op || o == admissionregistrationv1.OperationAll
		}
		groupOK := false
		for _, g := range r.APIGroups {
			groupOK = groupOK || g == "" || g == "*"
		}
		for _, res := range r.Resources {
			p, s, _ := strings.Cut(res, "/")
			if opOK && groupOK && (p == parent || p == "*") && (s == sub || s == "*") {
				return true
			}
		}
	}
	return false
}
