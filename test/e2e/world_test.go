package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/chartwebhook"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// The story's ranges: documentation and benchmark ranges only (SPEC §5).
var (
	trustedV4 = netip.MustParsePrefix("198.51.100.0/24")
	trustedV6 = netip.MustParsePrefix("2001:db8:100::/120")
	generalV4 = netip.MustParsePrefix("198.18.0.0/16")
	generalV6 = netip.MustParsePrefix("2001:db8:200::/64")
)

const (
	v4Key   = policy.AnnotationIPv4Pools
	v6Key   = policy.AnnotationIPv6Pools
	provKey = policy.AnnotationProvenance
)

// world is the running control plane, webhook and lab.
type world struct {
	ctx    context.Context
	env    *harness.Env
	c      client.Client // poolguard's and the allocator's types
	lab    *netlab.Lab
	prefix string
	node   string
}

// newWorld starts everything and registers its removal, on t.Cleanup and on
// a signal, followed by the check that nothing was left behind.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{ctx: context.Background(), prefix: uniquePrefix(t)}
	w.node = w.prefix + "node"
	if err := netlab.CheckRootFree(append([]netip.Prefix{trustedV4, trustedV6, generalV4, generalV6}, netlab.LinkRanges()...)...); err != nil {
		t.Fatal(err)
	}
	// The control plane registers the chart's webhook configurations; the
	// webhook itself is the poolguard-webhook binary run as the chart runs
	// it.
	opts, err := chartwebhook.HarnessOptions()
	if err != nil {
		t.Fatal(err)
	}
	env, err := harness.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	w.env = env
	stopEnv := func() { _ = env.Stop() }
	onInterrupt(stopEnv)
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
		// Last of all: nothing of the test's may remain.
		if err := netlab.Leftovers(w.prefix); err != nil {
			t.Error(err)
		}
	})
	startWebhook(t, w)
	if w.c, err = harness.Client(env.Config); err != nil {
		t.Fatal(err)
	}
	// The API server calls the webhook through the chart's configurations.
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(w.ctx, opts.Mutating.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the chart's MutatingWebhookConfiguration %s is not registered: %v", opts.Mutating.Name, err)
	}
	kubeconfig := pluginKubeconfig(t, env.Env)
	if err := w.c.Create(w.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.node}}); err != nil {
		t.Fatal(err)
	}
	// Start may be interrupted before it returns a lab to close.
	onInterrupt(func() { _ = netlab.Sweep(w.prefix) })
	w.lab, err = netlab.Start(netlab.Config{
		Prefix:     w.prefix,
		BinDir:     harness.BinDir(),
		APIServer:  env.Config.Host,
		Kubeconfig: kubeconfig,
		NodeName:   w.node,
		PodRanges:  []netip.Prefix{trustedV4, trustedV6, generalV4, generalV6},
		Trusted:    []netip.Prefix{trustedV4, trustedV6},
	})
	if err != nil {
		t.Fatal(err)
	}
	closeLab := func() { _ = w.lab.Close() }
	onInterrupt(closeLab)
	t.Cleanup(func() {
		if err := w.lab.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	return w
}

// startWebhook runs poolguard-webhook with the chart's args, incl.
// --allocator-controllers (GC and IPPool status), in a network namespace of
// its own, and waits until the webhook has seen the cluster.
func startWebhook(t *testing.T, w *world) {
	t.Helper()
	dir, err := os.MkdirTemp("", w.prefix+"webhook-")
	if err != nil {
		t.Fatal(err)
	}
	onInterrupt(func() { _ = os.RemoveAll(dir) })
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	onInterrupt(func() { _ = netlab.Sweep(w.prefix) })
	onInterrupt(func() { _ = netlab.StopServices() })
	wh, err := chartwebhook.Start(w.ctx, w.env, pluginKubeconfig(t, w.env.Env), dir, w.prefix+"webhook")
	if err != nil {
		t.Fatal(err)
	}
	onInterrupt(func() { _ = wh.Stop() })
	t.Cleanup(func() {
		if err := wh.Stop(); err != nil {
			t.Errorf("stopping poolguard-webhook: %v", err)
		}
	})
	t.Logf("poolguard-webhook %s", strings.Join(wh.Args, " "))
}

// uniquePrefix names this run's namespaces, so that runs never meet.
func uniquePrefix(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pge2e-" + hex.EncodeToString(b) + "-"
}

// pluginKubeconfig is the node plugin's kubeconfig for the API server.
func pluginKubeconfig(t *testing.T, te *envtest.Environment) []byte {
	u, err := te.AddUser(envtest.User{Name: "poolguard-ipam", Groups: []string{"system:masters"}}, &rest.Config{QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (w *world) pool(t *testing.T, name string, cidr netip.Prefix, manual bool, namespaces ...string) {
	t.Helper()
	p := &apiv1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: apiv1alpha1.IPPoolSpec{CIDR: cidr.String(), AssignmentMode: apiv1alpha1.AssignmentAutomatic}}
	if manual {
		p.Spec.AssignmentMode = apiv1alpha1.AssignmentManual
	}
	if len(namespaces) > 0 {
		p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: namespaces,
		}}}
	}
	if err := w.c.Create(w.ctx, p); err != nil {
		t.Fatal(err)
	}
}

func (w *world) namespace(t *testing.T, name string, ann map[string]string) {
	t.Helper()
	if err := w.c.Create(w.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}); err != nil {
		t.Fatal(err)
	}
}

// newPod builds a pod on the lab's node.
func (w *world) newPod(ns, name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec: corev1.PodSpec{
			NodeName:   w.node,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
}

// createPod creates a pod through the API server (and so the webhook).
func (w *world) createPod(t *testing.T, ns, name string, ann map[string]string) *corev1.Pod {
	t.Helper()
	p := w.newPod(ns, name, ann)
	if err := w.c.Create(w.ctx, p); err != nil {
		t.Fatalf("creating pod %s/%s: %v", ns, name, err)
	}
	return p
}

// sandbox sets the pod's network up on the node.
func (w *world) sandbox(t *testing.T, p *corev1.Pod, name string) *netlab.Sandbox {
	t.Helper()
	s, err := w.lab.AddPod(netlab.PodRef{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)}, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFrozen waits until a dry-run pod in ns is frozen onto want for the
// family key: the webhook reads namespaces and pools from its informers,
// which follow the API server by a moment.
func (w *world) waitFrozen(t *testing.T, ns, key, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := w.newPod(ns, "cache-probe", nil)
		err := w.c.Create(w.ctx, p, client.DryRunAll)
		if err == nil && p.Annotations[key] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook never froze %s=%s onto a pod in %s (last: %v, %v)", key, want, ns, p.Annotations, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// poolList renders a pool annotation value.
func poolList(names ...string) string {
	b, _ := json.Marshal(names)
	return string(b)
}

// isRefused reports whether a connect failed because the peer reset it:
// the firewall's verdict for an untrusted source.
func isRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection refused")
}

// deletePod deletes a Pod object and waits until it is gone.
func (w *world) deletePod(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if err := w.c.Delete(w.ctx, p, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}
