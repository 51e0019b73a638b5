package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	allocv1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// The pools of the story: an Automatic pool for every pod that names none
// (the webhook's own pods included), and the range the legacy firewall
// trusts, which only the payments namespace may use.
var (
	storyGeneral = netip.MustParsePrefix("198.51.100.0/24")
	storyTrusted = netip.MustParsePrefix("203.0.113.0/25")
)

const (
	release   = "poolguard"
	releaseNS = "poolguard-system"
	replicas  = 20
)

// TestHelmInstallOnNode is the install a user does, on a real node: the
// chart's image built from this checkout and imported into containerd,
// `helm install` of charts/poolguard with no admin shortcut, the installer
// DaemonSet writing the plugin, its node-bound credentials and the node's
// CNI configuration, the webhook's pods taking their addresses from
// poolguard-ipam; then the story with real pods, a real firewall, an
// upgrade under load and an uninstall.
func TestHelmInstallOnNode(t *testing.T) {
	c := startCluster(t, cluster.Config{
		Routed: &cluster.RoutedNetwork{Ranges: []netip.Prefix{storyGeneral, storyTrusted}},
	})
	t.Logf("cluster memory before the install: %d MiB resident", c.MemoryRSS()>>20)
	ctx := context.Background()
	cl, err := harness.Client(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	image, err := cluster.ChartImage()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.ImportPoolguardImage(image); err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s built for this platform and imported in %s", image, time.Since(start).Round(time.Millisecond))

	helm := c.Helm()
	rel := charts.Release{Name: release, Namespace: releaseNS, Values: storyValues(t, c)}
	start = time.Now()
	if out, err := helm.Install(rel, false, "--create-namespace"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	waitFor(t, "the node Ready (the installer wrote the CNI configuration)", 3*time.Minute, func() (bool, error) {
		return c.WaitNodeReady(time.Second) == nil, fmt.Errorf("not Ready; installer: %s", podSummary(ctx, c, releaseNS))
	})
	waitFor(t, "the webhook Deployment available", 5*time.Minute, func() (bool, error) {
		return rolledOut(ctx, c, release+"-webhook")
	})
	t.Logf("helm install to node Ready and webhook available: %s", time.Since(start).Round(time.Millisecond))

	t.Run("the installer wrote the node's CNI configuration", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(c.CNIConfDir(), "10-"+c.Name+".conflist"))
		if err != nil {
			t.Fatal(err)
		}
		var conf struct {
			Plugins []struct {
				IPAM map[string]any `json:"ipam"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal(b, &conf); err != nil {
			t.Fatal(err)
		}
		ipam := conf.Plugins[0].IPAM
		if ipam["type"] != "poolguard-ipam" || ipam["nodeName"] != c.NodeName || ipam["kubeconfig"] != filepath.Join(c.CNIConfDir(), "poolguard", "poolguard-kubeconfig") {
			t.Errorf("the installer did not fill in the plugin's node and kubeconfig: %v", ipam)
		}
		if _, err := os.Stat(filepath.Join(c.CNIBinDir(), "poolguard-ipam")); err != nil {
			t.Errorf("poolguard-ipam not installed: %v", err)
		}
	})

	t.Run("the webhook's pods got addresses from poolguard-ipam", func(t *testing.T) {
		pods := listPods(ctx, t, c, releaseNS, "app.kubernetes.io/component=webhook")
		if len(pods) < 2 {
			t.Fatalf("%d webhook pods", len(pods))
		}
		for _, p := range pods {
			ip := netip.MustParseAddr(p.Status.PodIP)
			if !storyGeneral.Contains(ip) {
				t.Errorf("webhook pod %s has %s, outside the Automatic pool %s", p.Name, ip, storyGeneral)
			}
			if !claimed(ctx, t, cl, p, "general") {
				t.Errorf("webhook pod %s's address %s has no IPAMClaim from pool general", p.Name, ip)
			}
		}
	})

	t.Run("the plugin's credential is bound to the node", func(t *testing.T) {
		kubeconfig := filepath.Join(c.CNIConfDir(), "poolguard", "poolguard-kubeconfig")
		out, err := c.InNode(filepath.Join(harness.BinDir(), "kubectl"), "--kubeconfig", kubeconfig, "auth", "whoami", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var review struct {
			Status struct {
				UserInfo struct {
					Username string              `json:"username"`
					Extra    map[string][]string `json:"extra"`
				} `json:"userInfo"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &review); err != nil {
			t.Fatal(err)
		}
		u := review.Status.UserInfo
		if u.Username != "system:serviceaccount:"+releaseNS+":"+release+"-cni" || !slices.Equal(u.Extra["authentication.kubernetes.io/node-name"], []string{c.NodeName}) {
			t.Errorf("the plugin authenticates as %s with %v; want the plugin's account bound to node %s", u.Username, u.Extra, c.NodeName)
		}
	})

	// The namespaces of the story.
	must(t, createNamespace(ctx, c, "payments", `["trusted"]`))
	must(t, createNamespace(ctx, c, "shop", ""))
	waitFor(t, "default service accounts", time.Minute, func() (bool, error) {
		for _, ns := range []string{"payments", "shop"} {
			if _, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return false, err
			}
		}
		return true, nil
	})

	var paymentsPods []corev1.Pod
	t.Run("a Deployment in the trusted namespace gets addresses from the trusted pool", func(t *testing.T) {
		start := time.Now()
		must(t, createDeployment(ctx, c, "payments", "api", replicas))
		waitFor(t, "payments/api available", 3*time.Minute, func() (bool, error) { return rolledOutIn(ctx, c, "payments", "api") })
		t.Logf("Deployment of %d replicas: create to all Running in %s", replicas, time.Since(start).Round(time.Millisecond))
		paymentsPods = listPods(ctx, t, c, "payments", "app=api")
		var toRunning []time.Duration
		for _, p := range paymentsPods {
			ip := netip.MustParseAddr(p.Status.PodIP)
			if !storyTrusted.Contains(ip) {
				t.Errorf("pod %s has %s, outside the trusted pool %s", p.Name, ip, storyTrusted)
			}
			if p.Annotations[policy.AnnotationIPv4Pools] != `["trusted"]` || p.Annotations[policy.AnnotationProvenance] == "" {
				t.Errorf("pod %s not frozen: %v", p.Name, p.Annotations)
			}
			toRunning = append(toRunning, readyAfter(p))
		}
		sort.Slice(toRunning, func(i, j int) bool { return toRunning[i] < toRunning[j] })
		t.Logf("pod create to Ready (%d pods, whole seconds): p50 %s, max %s", len(toRunning), toRunning[len(toRunning)/2], toRunning[len(toRunning)-1])
		t.Logf("cluster memory with poolguard and %d pods: %d MiB resident (every component, shim and pod process)", replicas, c.MemoryRSS()>>20)
	})
	if len(paymentsPods) == 0 {
		t.FailNow()
	}
	must(t, createDeployment(ctx, c, "shop", "web", 2))
	waitFor(t, "shop/web available", 3*time.Minute, func() (bool, error) { return rolledOutIn(ctx, c, "shop", "web") })
	shopPods := listPods(ctx, t, c, "shop", "app=web")

	t.Run("the firewall lets the payments pods through and refuses the others", func(t *testing.T) {
		fw, err := c.StartFirewall(storyTrusted)
		if err != nil {
			t.Fatal(err)
		}
		defer fw.Close()
		p := paymentsPods[0]
		ip := netip.MustParseAddr(p.Status.PodIP)
		ns, err := c.PodNetns(ip)
		if err != nil {
			t.Fatal(err)
		}
		seen, err := netlab.Connect(ns, fw.Addr)
		if err != nil || seen != ip {
			t.Errorf("payments pod %s (%s): firewall saw %s, %v; want its own address accepted", p.Name, ip, seen, err)
		}
		s := shopPods[0]
		ip = netip.MustParseAddr(s.Status.PodIP)
		if ns, err = c.PodNetns(ip); err != nil {
			t.Fatal(err)
		}
		if _, err := netlab.Connect(ns, fw.Addr); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("shop pod %s (%s) reached the firewall: %v", s.Name, ip, err)
		}
	})

	kubectl := func(args ...string) (string, error) {
		return c.InNode(filepath.Join(harness.BinDir(), "kubectl"), append([]string{"--kubeconfig", c.AdminKubeconfig()}, args...)...)
	}
	t.Run("kubectl apply of a pod naming a forbidden pool is refused", func(t *testing.T) {
		manifest := filepath.Join(t.TempDir(), "pod.yaml")
		must(t, os.WriteFile(manifest, pauseManifest("shop", "sneaky", `cni.projectcalico.org/ipv4pools: '["trusted"]'`), 0o644))
		out, err := kubectl("apply", "-f", manifest)
		if err == nil || !strings.Contains(err.Error(), "trusted") {
			t.Errorf("kubectl apply: %v\n%s", err, out)
		}
	})
	t.Run("a late kubectl annotate is refused", func(t *testing.T) {
		out, err := kubectl("-n", "shop", "annotate", "--overwrite", "pod", shopPods[0].Name, policy.AnnotationIPv4Pools+`=["trusted"]`)
		if err == nil || !strings.Contains(err.Error(), "delete") {
			t.Errorf("kubectl annotate: %v\n%s", err, out)
		}
	})

	t.Run("a recreated sandbox keeps its pool after the namespace default moved", func(t *testing.T) {
		var ns corev1.Namespace
		must(t, cl.Get(ctx, client.ObjectKey{Name: "payments"}, &ns))
		ns.Annotations[policy.AnnotationIPv4Pools] = `["general"]`
		must(t, cl.Update(ctx, &ns))
		p := paymentsPods[1]
		ip := netip.MustParseAddr(p.Status.PodIP)
		if err := c.KillSandbox("payments", p.Name); err != nil {
			t.Fatal(err)
		}
		var now *corev1.Pod
		waitFor(t, "pod "+p.Name+" back with a new sandbox", 2*time.Minute, func() (bool, error) {
			var err error
			if now, err = c.Client.CoreV1().Pods("payments").Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
				return false, err
			}
			restarted := len(now.Status.ContainerStatuses) > 0 && now.Status.ContainerStatuses[0].RestartCount > 0
			return restarted && isReady(now) && now.Status.PodIP != "", fmt.Errorf("restarted %v, ready %v, IP %q", restarted, isReady(now), now.Status.PodIP)
		})
		got := netip.MustParseAddr(now.Status.PodIP)
		if !storyTrusted.Contains(got) {
			t.Errorf("after its sandbox was recreated, pod %s has %s, outside its frozen pool %s", p.Name, got, storyTrusted)
		}
		t.Logf("pod %s: %s, then %s after its sandbox was killed", p.Name, ip, got)
	})

	t.Run("deleting pods releases their addresses", func(t *testing.T) {
		must(t, c.Client.AppsV1().Deployments("payments").Delete(ctx, "api", metav1.DeleteOptions{}))
		waitFor(t, "payments' claims released", 2*time.Minute, func() (bool, error) {
			var claims allocv1alpha1.IPAMClaimList
			if err := cl.List(ctx, &claims); err != nil {
				return false, err
			}
			left := 0
			for _, cm := range claims.Items {
				if cm.Spec.Pod.Namespace == "payments" {
					left++
				}
			}
			return left == 0, fmt.Errorf("%d claims of payments pods left; pods: %s", left, podSummary(ctx, c, "payments"))
		})
	})

	t.Run("a static pod gets an address and keeps it past the garbage collector's grace period", func(t *testing.T) {
		must(t, os.WriteFile(filepath.Join(c.StaticPodDir, "static-web.yaml"), pauseManifest("shop", "static-web", ""), 0o644))
		mirror := "static-web-" + c.NodeName
		var p *corev1.Pod
		waitFor(t, "the static pod's mirror Running with an address", 2*time.Minute, func() (bool, error) {
			var err error
			if p, err = c.Client.CoreV1().Pods("shop").Get(ctx, mirror, metav1.GetOptions{}); err != nil {
				return false, err
			}
			return isReady(p) && p.Status.PodIP != "", fmt.Errorf("ready %v, IP %q; %s", isReady(p), p.Status.PodIP, podSummary(ctx, c, "shop"))
		})
		ip := netip.MustParseAddr(p.Status.PodIP)
		if !storyGeneral.Contains(ip) || p.Annotations[policy.AnnotationMirrorPod] == "" || !claimed(ctx, t, cl, *p, "general") {
			t.Fatalf("static pod %s: %s, mirror of %q, claimed %v", mirror, ip, p.Annotations[policy.AnnotationMirrorPod], claimed(ctx, t, cl, *p, "general"))
		}
		// The collector sweeps every 2s and frees what looks orphaned
		// for 10s: three grace periods give it every chance to err.
		time.Sleep(30 * time.Second)
		now, err := c.Client.CoreV1().Pods("shop").Get(ctx, mirror, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if now.Status.PodIP != ip.String() || !isReady(now) || !claimed(ctx, t, cl, *now, "general") {
			t.Errorf("after the grace period the static pod has %q (ready %v), claimed %v; want %s kept", now.Status.PodIP, isReady(now), claimed(ctx, t, cl, *now, "general"), ip)
		}
		must(t, os.Remove(filepath.Join(c.StaticPodDir, "static-web.yaml")))
	})

	t.Run("helm upgrade rolls the installer and the webhook without a failed pod create", func(t *testing.T) {
		before := listPods(ctx, t, c, releaseNS, "")
		var created, failed atomic.Int32
		var failures []string
		var mu sync.Mutex
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				pod := pausePod("shop", fmt.Sprintf("during-upgrade-%d", i))
				if _, err := c.Client.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				created.Add(1)
			}
		}()
		up := rel
		up.Set = []string{"image.pullPolicy=Never"}
		out, err := helm.Install(up, true, "--reuse-values")
		if err != nil {
			close(stop)
			<-done
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		waitFor(t, "the upgrade rolled out", 5*time.Minute, func() (bool, error) {
			after := listPods(ctx, t, c, releaseNS, "")
			for _, p := range after {
				for _, b := range before {
					if p.Name == b.Name {
						return false, fmt.Errorf("pod %s not replaced yet", p.Name)
					}
				}
			}
			ok, err := rolledOut(ctx, c, release+"-webhook")
			if !ok {
				return false, err
			}
			return daemonSetRolledOut(ctx, c, release+"-cni")
		})
		// Keep creating until the old replicas have stopped: a replica
		// that stops serving before the API server stops calling it is
		// what fails creations.
		waitFor(t, "the old pods gone", 2*time.Minute, func() (bool, error) {
			for _, b := range before {
				if _, err := c.Client.CoreV1().Pods(releaseNS).Get(ctx, b.Name, metav1.GetOptions{}); err == nil {
					return false, fmt.Errorf("pod %s still terminating", b.Name)
				}
			}
			return true, nil
		})
		close(stop)
		<-done
		t.Logf("pods created during the upgrade: %d, failed: %d", created.Load(), failed.Load())
		if failed.Load() > 0 {
			t.Errorf("%d pod creates failed during the upgrade: %v", failed.Load(), failures)
		}
		if created.Load() < 5 {
			t.Errorf("only %d pods created during the upgrade: the test proves nothing", created.Load())
		}
	})

	t.Run("helm uninstall leaves no poolguard object but the pools and CRDs", func(t *testing.T) {
		if out, err := helm.Run(nil, "uninstall", release, "--namespace", releaseNS, "--wait"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, out)
		}
		// The release's objects go at once; their dependents (pods,
		// ReplicaSets) as the garbage collector and the kubelet get to
		// them.
		start := time.Now()
		waitFor(t, "nothing of the release left", 2*time.Minute, func() (bool, error) {
			left := leftObjects(t, c)
			return len(left) == 0, fmt.Errorf("left behind by helm uninstall: %v", left)
		})
		t.Logf("helm uninstall: everything of the release gone in %s", time.Since(start).Round(time.Millisecond))
	})
}

// storyValues are the chart values of the story: the chart's defaults but
// for this node's CNI directories and network, two webhook replicas on the
// one node, certificates without cert-manager, and the story's pools.
func storyValues(t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	values := map[string]any{
		"certificates": map[string]any{"mode": "internal"},
		// A short grace, for the static pod to outlive it in the test.
		"allocator": map[string]any{"gc": map[string]any{"gracePeriod": "10s", "interval": "2s"}},
		"webhook":   map[string]any{"replicas": 2},
		"cni": map[string]any{
			"binDir":            c.CNIBinDir(),
			"confDir":           c.CNIConfDir(),
			"networkConfigName": "10-" + c.Name + ".conflist",
			"networkConfig": map[string]any{
				"cniVersion": "1.0.0",
				// libcni caches results under the network's name; the
				// cluster removes its own by this name.
				"name": c.Name,
				"plugins": []any{map[string]any{
					"type": "bridge", "bridge": "cni0", "isGateway": false, "ipMasq": false,
					"ipam": map[string]any{
						"type":    "poolguard-ipam",
						"timeout": "5s",
						"lockDir": filepath.Join(c.Dir, "poolguard-ipam"),
						"routes":  cluster.RoutedIPAMRoutes(),
					},
				}},
			},
		},
		"ippools": []any{
			map[string]any{"name": "general", "spec": map[string]any{"cidr": storyGeneral.String(), "assignmentMode": "Automatic"}},
			map[string]any{"name": "trusted", "spec": map[string]any{
				"cidr": storyTrusted.String(), "assignmentMode": "Manual",
				"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "payments"}},
			}},
		},
	}
	b, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pauseManifest is a pause pod's manifest, as a person writes one for
// kubectl or the kubelet's staticPodPath, with an optional annotation line.
func pauseManifest(ns, name, annotation string) []byte {
	meta := "  name: " + name + "\n  namespace: " + ns + "\n"
	if annotation != "" {
		meta += "  annotations:\n    " + annotation + "\n"
	}
	return []byte("apiVersion: v1\nkind: Pod\nmetadata:\n" + meta +
		"spec:\n  containers:\n  - name: pause\n    image: " + cluster.PauseImage + "\n    imagePullPolicy: Never\n")
}

func createNamespace(ctx context.Context, c *cluster.Cluster, name, pools string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if pools != "" {
		ns.Annotations = map[string]string{policy.AnnotationIPv4Pools: pools}
	}
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	return err
}

func pausePod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "pause", Image: cluster.PauseImage, ImagePullPolicy: corev1.PullNever}},
		},
	}
}

func createDeployment(ctx context.Context, c *cluster.Cluster, ns, name string, n int32) error {
	pod := pausePod(ns, "")
	labels := map[string]string{"app": name}
	_, err := c.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod.Spec},
		},
	}, metav1.CreateOptions{})
	return err
}

func rolledOut(ctx context.Context, c *cluster.Cluster, name string) (bool, error) {
	return rolledOutIn(ctx, c, releaseNS, name)
}

func rolledOutIn(ctx context.Context, c *cluster.Cluster, ns, name string) (bool, error) {
	d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	want := *d.Spec.Replicas
	s := d.Status
	ok := s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
	return ok, fmt.Errorf("%s/%s: %d updated, %d available, %d total of %d; pods: %s", ns, name, s.UpdatedReplicas, s.AvailableReplicas, s.Replicas, want, podSummary(ctx, c, ns))
}

func daemonSetRolledOut(ctx context.Context, c *cluster.Cluster, name string) (bool, error) {
	d, err := c.Client.AppsV1().DaemonSets(releaseNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	s := d.Status
	ok := s.ObservedGeneration >= d.Generation && s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberAvailable == s.DesiredNumberScheduled && s.DesiredNumberScheduled > 0
	return ok, fmt.Errorf("daemonset %s: %d updated, %d available of %d", name, s.UpdatedNumberScheduled, s.NumberAvailable, s.DesiredNumberScheduled)
}

// podSummary says, for a failing wait, each pod's phase and why it waits.
func podSummary(ctx context.Context, c *cluster.Cluster, ns string) string {
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b []string
	for _, p := range pods.Items {
		s := p.Name + " " + string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				s += " " + cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message
			}
		}
		for _, cond := range p.Status.Conditions {
			if cond.Status != corev1.ConditionTrue && cond.Message != "" {
				s += " (" + cond.Message + ")"
			}
		}
		b = append(b, s)
	}
	events, _ := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	for _, e := range events.Items {
		if e.Type == corev1.EventTypeWarning {
			b = append(b, "event "+e.InvolvedObject.Name+": "+e.Reason+": "+e.Message)
		}
	}
	return strings.Join(b, "; ")
}

func listPods(ctx context.Context, t *testing.T, c *cluster.Cluster, ns, selector string) []corev1.Pod {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyAfter is how long the pod took from creation to Ready, to the
// second (the resolution of the API's timestamps).
func readyAfter(p corev1.Pod) time.Duration {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Sub(p.CreationTimestamp.Time)
		}
	}
	return -1
}

// claimed reports whether an IPAMClaim of pool holds the pod's address.
func claimed(ctx context.Context, t *testing.T, cl client.Client, p corev1.Pod, pool string) bool {
	t.Helper()
	var claims allocv1alpha1.IPAMClaimList
	if err := cl.List(ctx, &claims); err != nil {
		t.Fatal(err)
	}
	for _, cm := range claims.Items {
		for _, a := range cm.Spec.Addresses {
			if cm.Spec.Pod.Namespace == p.Namespace && cm.Spec.Pod.Name == p.Name && a.Pool == pool && a.Address == p.Status.PodIP {
				return true
			}
		}
	}
	return false
}

// leftObjects lists what of the release is still in the API: every object
// labelled with its instance, in every namespaced and cluster-scoped
// resource the API server serves.
func leftObjects(t *testing.T, c *cluster.Cluster) []string {
	t.Helper()
	out, err := c.InNode(filepath.Join(harness.BinDir(), "kubectl"), "--kubeconfig", c.AdminKubeconfig(),
		"get", allResources(t, c), "--all-namespaces", "-l", "app.kubernetes.io/instance="+release, "-o", "name", "--ignore-not-found")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		// The pools outlive the release (README): a pool with
		// allocations must not vanish with the chart.
		if l != "" && !strings.HasPrefix(l, "ippool.ipam.poolguard.dev/") {
			left = append(left, l)
		}
	}
	return left
}

// allResources is every listable resource, comma-separated, for kubectl get.
func allResources(t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	out, err := c.InNode(filepath.Join(harness.BinDir(), "kubectl"), "--kubeconfig", c.AdminKubeconfig(), "api-resources", "--verbs=list", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	var rs []string
	for _, r := range strings.Fields(out) {
		// Events and leases are written by components about the release,
		// not by it.
		if r != "events" && r != "events.events.k8s.io" && r != "leases.coordination.k8s.io" {
			rs = append(rs, r)
		}
	}
	return strings.Join(rs, ",")
}
