package installer_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/cni/installer"
	"poolguard.dev/poolguard/test/harness"
)

// The chart release the test installs the installer's RBAC of.
const (
	release     = "pg"
	namespace   = "pg-system"
	pluginSA    = release + "-poolguard-cni"
	installerSA = release + "-poolguard-cni-installer"
	nodeName    = "worker-1"
	// nodeNameExtra is the user info extra the API server adds for a token
	// bound to a Node (k8s.io/apiserver's serviceaccount.NodeNameKey).
	nodeNameExtra = "authentication.kubernetes.io/node-name"
)

// TestNodeBoundTokenAgainstAPIServer runs the installer against a real
// kube-apiserver, with the chart's own ServiceAccounts and installer RBAC,
// as the installer's ServiceAccount (a token of it, as in a pod): the
// kubeconfig it writes authenticates as the plugin's ServiceAccount with
// the node in its user info; the installer can mint no other token; a
// refresh rewrites the kubeconfig with a new working token; and the token
// dies with the Node object.
func TestNodeBoundTokenAgainstAPIServer(t *testing.T) {
	env, err := harness.Start(harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(env.Config)
	must(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}))
	applyChartObjects(ctx, t, env)
	node, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	must(t, err)

	// The installer's own credential, as a pod of its DaemonSet has it.
	dir := t.TempDir()
	tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, installerSA, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	must(t, err)
	installerKubeconfig := writeKubeconfig(t, filepath.Join(dir, "installer-kubeconfig"), env.Config.Host, env.Config.CAData, tr.Status.Token)
	cfg, err := installer.InstallerRESTConfig(installerKubeconfig, "")
	must(t, err)
	installerClient, err := corev1client.NewForConfig(cfg)
	must(t, err)

	// The node: host directories, the plugin and CA in the pod, the chart's
	// network configuration.
	host := filepath.Join(dir, "host")
	for _, d := range []string{filepath.Join(host, "bin"), filepath.Join(host, "net.d"), filepath.Join(dir, "pod")} {
		must(t, os.MkdirAll(d, 0o755))
	}
	ca, plugin, netconf := filepath.Join(dir, "pod", "ca.crt"), filepath.Join(dir, "pod", "poolguard-ipam"), filepath.Join(dir, "pod", "10-poolguard.conflist")
	must(t, os.WriteFile(ca, env.Config.CAData, 0o644))
	must(t, os.WriteFile(plugin, []byte("#!plugin\n"), 0o755))
	must(t, os.WriteFile(netconf, []byte(`{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge","ipam":{"type":"poolguard-ipam"}}]}`), 0o644))
	kubeconfig := filepath.Join(host, "net.d", "poolguard", "poolguard-kubeconfig")

	// Real tokens live at least 10 minutes: the refresh is driven by a fake
	// clock instead of waiting.
	clk := clocktesting.NewFakeClock(time.Now())
	var logs installer.Logs
	c := installer.Config{
		Plugin: plugin, BinDir: filepath.Join(host, "bin"), Kubeconfig: kubeconfig, CAFile: ca, Server: env.Config.Host,
		Tokens:  installer.NodeBoundTokens{Client: installerClient, Namespace: namespace, ServiceAccount: pluginSA, NodeName: nodeName, Expiration: installer.MinTokenExpiration, Clock: clk},
		Network: installer.NetworkConfig{Source: netconf, Dir: filepath.Join(host, "net.d"), Name: "10-poolguard.conflist", HostKubeconfig: "/etc/cni/net.d/poolguard/poolguard-kubeconfig", NodeName: nodeName},
		Clock:   clk, Interval: 30 * time.Second,
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx, logs.Logf) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, "the installer's first round", 30*time.Second, clk.HasWaiters)

	t.Run("the plugin authenticates as its ServiceAccount, bound to the node", func(t *testing.T) {
		u, err := whoami(ctx, kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if want := "system:serviceaccount:" + namespace + ":" + pluginSA; u.Username != want {
			t.Errorf("the plugin is %q, want %q", u.Username, want)
		}
		if got := u.Extra[nodeNameExtra]; !slices.Equal(got, authenticationv1.ExtraValue{nodeName}) {
			t.Errorf("extra %s = %v, want [%s] (extras: %v)", nodeNameExtra, got, nodeName, u.Extra)
		}
		if got := u.Extra["authentication.kubernetes.io/node-uid"]; !slices.Equal(got, authenticationv1.ExtraValue{string(node.UID)}) {
			t.Errorf("node-uid = %v, want the Node's UID %s", got, node.UID)
		}
		if _, err := os.Stat(filepath.Join(host, "net.d", "10-poolguard.conflist")); err != nil {
			t.Errorf("network configuration not written: %v", err)
		}
	})

	t.Run("the installer may mint no other token", func(t *testing.T) {
		for _, tc := range []struct{ ns, sa string }{
			{namespace, installerSA}, // its own: no unbound, longer-lived credential
			{namespace, "default"},
			{"default", pluginSA}, // the plugin's name in another namespace
			{"kube-system", "default"},
		} {
			_, err := installerClient.ServiceAccounts(tc.ns).CreateToken(ctx, tc.sa, &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
			}, metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) {
				t.Errorf("token for %s/%s: %v, want 403 Forbidden", tc.ns, tc.sa, err)
			}
		}
		if _, err := installerClient.Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing Nodes: %v, want 403 Forbidden (get only)", err)
		}
		if _, err := installerClient.Secrets(namespace).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing Secrets: %v, want 403 Forbidden", err)
		}
	})

	t.Run("a refresh rewrites the kubeconfig with a new working token", func(t *testing.T) {
		before := tokenIn(t, kubeconfig)
		// A 10m token is due after 6m40s.
		clk.Step(6 * time.Minute)
		eventually(t, "the installer idle again", 30*time.Second, clk.HasWaiters)
		if tokenIn(t, kubeconfig) != before {
			t.Fatal("token replaced before two thirds of its lifetime")
		}
		clk.Step(time.Minute)
		eventually(t, "a new token in the kubeconfig", 30*time.Second, func() bool { return tokenIn(t, kubeconfig) != before })
		u, err := whoami(ctx, kubeconfig)
		if err != nil {
			t.Fatalf("the refreshed token does not authenticate: %v", err)
		}
		if !slices.Equal(u.Extra[nodeNameExtra], authenticationv1.ExtraValue{nodeName}) {
			t.Errorf("refreshed token not bound to the node: %v", u.Extra)
		}
		eventually(t, "the installer idle again", 30*time.Second, clk.HasWaiters)
	})

	t.Run("the token dies with the Node", func(t *testing.T) {
		must(t, admin.CoreV1().Nodes().Delete(ctx, nodeName, metav1.DeleteOptions{}))
		// The API server checks the bound object on every request (after
		// its short authentication cache).
		var last error
		eventually(t, "the plugin's token rejected", 60*time.Second, func() bool {
			_, last = whoami(ctx, kubeconfig)
			return apierrors.IsUnauthorized(last)
		})
		// The installer cannot get a new one either, and says so.
		clk.Step(10 * time.Minute)
		eventually(t, "the failed refresh logged", 30*time.Second, func() bool {
			return len(logs.Matching("token refresh failed", "Node "+nodeName, "not found")) > 0
		})
	})
}

// applyChartObjects creates the chart's ServiceAccounts and the installer's
// RBAC, as helm renders them with default values.
func applyChartObjects(ctx context.Context, t *testing.T, env *harness.Env) {
	t.Helper()
	out, err := charts.Helm{}.Template(charts.Release{Name: release, Namespace: namespace})
	must(t, err)
	objs, err := charts.Decode(out)
	must(t, err)
	want := map[string]bool{
		"ServiceAccount/" + pluginSA: true, "ServiceAccount/" + installerSA: true,
		"Role/" + installerSA: true, "RoleBinding/" + installerSA: true, "ClusterRole/" + installerSA: true, "ClusterRoleBinding/" + installerSA: true,
	}
	for _, o := range objs {
		key := o.GetKind() + "/" + o.GetName()
		if !want[key] {
			continue
		}
		delete(want, key)
		must(t, env.Client.Create(ctx, o))
	}
	if len(want) > 0 {
		t.Fatalf("the chart does not render %v", want)
	}
}

func writeKubeconfig(t *testing.T, path, server string, ca []byte, token string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	must(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

// whoami asks the API server who the kubeconfig's user is.
func whoami(ctx context.Context, kubeconfig string) (authenticationv1.UserInfo, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

func tokenIn(t *testing.T, kubeconfig string) string {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	must(t, err)
	return cfg.BearerToken
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
