package charts_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/test/chartwebhook"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// cluster is a local control plane the chart is installed into: a real
// kube-apiserver and etcd, cert-manager's CRDs, and helm pointed at it.
type cluster struct {
	env    *envtest.Environment
	admin  client.Client
	cfg    *rest.Config
	helm   charts.Helm
	dir    string
	svcNet string // the service CIDR's first three octets
}

// startCluster starts the control plane. Its service CIDR is a random /24
// of 127.0.0.0/8, so that a Service's ClusterIP is an address this machine
// answers on without touching its network configuration: the test plays
// kube-proxy (see proxyService), and the API server reaches the webhook
// through the chart's Service exactly as in a cluster, by ClusterIP.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	cmDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		t.Fatalf("locating cert-manager's module for its CRDs: %v", err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster{dir: t.TempDir()}
	c.svcNet = fmt.Sprintf("127.%d.%d", 100+mrand.IntN(100), 1+mrand.IntN(250))
	c.env = &envtest.Environment{
		BinaryAssetsDirectory: harness.BinDir(),
		// The chart installs poolguard's own CRDs; cert-manager's come from
		// its Go module, as they would from its own chart.
		CRDDirectoryPaths:     []string{filepath.Join(strings.TrimSpace(string(cmDir)), "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	c.env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", c.svcNet+".0/24")
	if c.cfg, err = c.env.Start(); err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s (make tools): %v", harness.BinDir(), err)
	}
	t.Cleanup(func() {
		if err := c.env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	if c.admin, err = client.New(c.cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := c.kubeconfig(t, "helm-admin", "system:masters")
	c.helm = charts.Helm{Env: []string{
		"KUBECONFIG=" + kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(c.dir, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(c.dir, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(c.dir, "helm", "data"),
	}}
	return c
}

// kubeconfig writes a kubeconfig for a user the API server authenticates by
// client certificate, and returns its path. A service account's user name
// and groups make RBAC treat the user as that service account.
func (c *cluster) kubeconfig(t *testing.T, user string, groups ...string) string {
	t.Helper()
	u, err := c.env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.dir, strings.NewReplacer(":", "_", "/", "_").Replace(user)+".kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientAs returns a client for user (impersonated by the admin).
func (c *cluster) clientAs(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cl, err := client.New(cfg, client.Options{Scheme: c.admin.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// buildWebhook builds poolguard-webhook from this tree.
func buildWebhook(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "poolguard-webhook")
	cmd := exec.Command("go", "build", "-o", out, "./webhook/cmd/poolguard-webhook")
	cmd.Dir = charts.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building poolguard-webhook: %v\n%s", err, b)
	}
	return out
}

// webhookProcess is poolguard-webhook running as a local process, as the
// chart's Deployment would run it in its container.
type webhookProcess struct {
	cmd  *exec.Cmd
	done chan error
	log  *netlab.SyncBuffer
}

// runWebhook starts the binary with the container's args and environment
// from the Deployment the chart installed, as the Deployment's service
// account, with certDir standing in for the container's certificate mount,
// and waits until its readiness probe passes.
func runWebhook(t *testing.T, bin string, dep *appsv1.Deployment, kubeconfig, certDir string) *webhookProcess {
	t.Helper()
	ctr := dep.Spec.Template.Spec.Containers[0]
	all, env, err := chartwebhook.StandIn(dep, certDir, kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	args := make([]string, 0, len(all))
	for _, a := range all {
		if flag, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "="); pendingFlags[flag] == "poolguard-webhook" {
			// TestChartFlagsExistInBinaries fails once the binary has it,
			// and then this stand-in goes.
			t.Logf("leaving out %s: poolguard-webhook does not have it yet (pendingFlags)", a)
			continue
		}
		args = append(args, a)
	}
	p := &webhookProcess{cmd: exec.Command(bin, args...), done: make(chan error, 1), log: &netlab.SyncBuffer{}}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })

	probe := ctr.ReadinessProbe.HTTPGet
	port := 0
	for _, cp := range ctr.Ports {
		if cp.Name == probe.Port.String() {
			port = int(cp.ContainerPort)
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, probe.Path)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("poolguard-webhook %v exited: %v\n%s", args, err, p.log.String())
		default:
		}
		if resp, err := http.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("poolguard-webhook not ready at %s within a minute:\n%s", url, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the process (SIGTERM, as the kubelet would) and waits for it.
func (p *webhookProcess) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("poolguard-webhook did not stop on SIGTERM")
	}
	p.done <- nil
	if t.Failed() {
		t.Logf("poolguard-webhook log:\n%s", p.log.String())
	}
}

// proxyService plays kube-proxy for one Service port: it listens on the
// Service's ClusterIP and port and forwards to the pod port its targetPort
// names, on 127.0.0.1 where the webhook process listens.
func proxyService(t *testing.T, svc *corev1.Service, portName string, dep *appsv1.Deployment) {
	t.Helper()
	var target int32
	var port int32
	for _, sp := range svc.Spec.Ports {
		if sp.Name != portName {
			continue
		}
		port = sp.Port
		for _, cp := range dep.Spec.Template.Spec.Containers[0].Ports {
			if cp.Name == sp.TargetPort.String() || sp.TargetPort.IntVal == cp.ContainerPort {
				target = cp.ContainerPort
			}
		}
	}
	if port == 0 || target == 0 {
		t.Fatalf("Service %s has no port %q reaching a container port", svc.Name, portName)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port))))
	if err != nil {
		t.Fatalf("listening on the ClusterIP: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = in.Close() }()
				out, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(target))))
				if err != nil {
					return
				}
				defer func() { _ = out.Close() }()
				go func() { _, _ = io.Copy(out, in) }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
}

// freePort returns a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// testCA stands in for cert-manager's CA Issuer.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "poolguard-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a serving certificate for a cert-manager Certificate, and
// returns the Secret data cert-manager would write: tls.crt, tls.key and
// ca.crt.
func (ca *testCA) issue(t *testing.T, crt *cmapi.Certificate) map[string][]byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: crt.Spec.DNSNames[0]}, DNSNames: crt.Spec.DNSNames,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(crt.Spec.Duration.Duration),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		"ca.crt":                ca.certPEM,
	}
}

// secretVolume lays out a Secret's data as the kubelet mounts a Secret
// volume: files in a timestamped directory, a "..data" symlink to it, and one
// symlink per key through "..data". update swaps "..data" atomically to a
// new directory and removes the old, as the kubelet does when the Secret
// changes: the one way a mounted certificate is ever replaced.
type secretVolume struct {
	dir string
	n   int
}

func (v *secretVolume) update(t *testing.T, data map[string][]byte) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..%s_%d", time.Now().UTC().Format("2006_01_02_15_04_05"), v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, b := range data {
		if err := os.WriteFile(filepath.Join(v.dir, ts, k), b, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(v.dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(v.dir, "..data_tmp"), filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k := range data {
		link := filepath.Join(v.dir, k)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// injectCA does what cert-manager's cainjector does for the annotation
// cert-manager.io/inject-ca-from: namespace/certificate: it copies ca.crt of
// the Certificate's Secret into every webhook's clientConfig.caBundle.
func injectCA(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	for _, obj := range []client.Object{&m, &v} {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
			t.Fatal(err)
		}
		from := obj.GetAnnotations()["cert-manager.io/inject-ca-from"]
		ns, crtName, ok := strings.Cut(from, "/")
		if !ok {
			t.Fatalf("%T %s has no cert-manager.io/inject-ca-from annotation", obj, name)
		}
		var crt cmapi.Certificate
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: crtName}, &crt); err != nil {
			t.Fatalf("inject-ca-from names Certificate %s: %v", from, err)
		}
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: crt.Spec.SecretName}, &sec); err != nil {
			t.Fatal(err)
		}
		ca := sec.Data["ca.crt"]
		switch o := obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			for i := range o.Webhooks {
				o.Webhooks[i].ClientConfig.CABundle = ca
			}
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			for i := range o.Webhooks {
				o.Webhooks[i].ClientConfig.CABundle = ca
			}
		}
		if err := c.Update(ctx, obj, client.FieldOwner("cert-manager-cainjector")); err != nil {
			t.Fatal(err)
		}
	}
}

// servedSerial dials the webhook's port and returns the serial of the
// certificate it presents.
func servedSerial(t *testing.T, port int) string {
	t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate, not trusting it
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func serialOf(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}
