package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator/kubestore"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/harness"
)

var (
	lockDir    string
	env        *harness.Env
	kc         client.Client // with the allocator's types
	lean       *kubestore.Client
	pluginPath string
	kubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "poolguard-ipam-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginPath = filepath.Join(dir, "poolguard-ipam")
	lockDir = filepath.Join(dir, "locks")
	build := exec.Command("go", "build", "-o", pluginPath, "poolguard.dev/poolguard/cni/cmd/poolguard-ipam")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the plugin:", err)
		return 1
	}
	env, err = harness.Start(harness.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping control plane:", err)
		}
	}()
	kubeconfig, _, err = harness.AdminKubeconfig(env.Env, "poolguard-ipam", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if kc, err = harness.Client(env.Config); err == nil {
		lean, err = kubestore.NewClient(env.Config)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// networkName is the CNI network's name in netConf (part of a claim's ID).
const networkName = "k8s-pod-network"

// netConf renders the network configuration the runtime would pass.
type netConf struct {
	Node        string
	Kubeconfig  string // default: the test's
	LockDir     string // default: the test's
	FailSafe    string
	Annotations map[string]string // runtimeConfig pod annotations
	PrevResult  json.RawMessage
	Valid       []types.GCAttachment
	Timeout     string
	// Cooldown is ipam.cooldown; empty leaves the plugin's default (5m).
	Cooldown string
	// History is ipam.history: claims wait for the history recorder.
	History bool
}

func (n netConf) JSON() []byte {
	ipam := map[string]any{"type": "poolguard-ipam", "kubeconfig": kubeconfig, "nodeName": n.Node, "lockDir": lockDir}
	if n.Kubeconfig != "" {
		ipam["kubeconfig"] = n.Kubeconfig
	}
	if n.LockDir != "" {
		ipam["lockDir"] = n.LockDir
	}
	if n.FailSafe != "" {
		ipam["failSafe"] = n.FailSafe
	}
	if n.Timeout != "" {
		ipam["timeout"] = n.Timeout
	}
	if n.Cooldown != "" {
		ipam["cooldown"] = n.Cooldown
	}
	if n.History {
		ipam["history"] = true
	}
	c := map[string]any{"cniVersion": "1.1.0", "name": networkName, "type": "poolguard-ipam", "ipam": ipam}
	if n.Annotations != nil {
		c["runtimeConfig"] = map[string]any{"io.kubernetes.cri.pod-annotations": n.Annotations}
	}
	if n.PrevResult != nil {
		c["prevResult"] = n.PrevResult
	}
	if n.Valid != nil {
		c["cni.dev/valid-attachments"] = n.Valid
	}
	b, _ := json.Marshal(c)
	return b
}

// call is one plugin invocation.
type call struct {
	Cmd, ContainerID, IfName string
	Pod                      *corev1.Pod
	Conf                     netConf
}

// outcome is what the plugin printed.
type outcome struct {
	Stdout, Stderr []byte
	Err            *types.Error // the CNI error on stdout, if it failed
	Result         struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
}

// Addrs returns the result's addresses.
func (o outcome) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, ip := range o.Result.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// command prepares the plugin process for a call.
func (c call) command(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, pluginPath)
	ifName := c.IfName
	if ifName == "" {
		ifName = "eth0"
	}
	args := "IgnoreUnknown=1"
	if c.Pod != nil {
		args += fmt.Sprintf(";K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s", c.Pod.Namespace, c.Pod.Name, c.ContainerID, c.Pod.UID)
	}
	cmd.Env = []string{
		"CNI_COMMAND=" + c.Cmd,
		"CNI_CONTAINERID=" + c.ContainerID,
		// IPAM plugins never enter the namespace; the path need not exist.
		"CNI_NETNS=/var/run/netns/poolguard-test-" + c.ContainerID,
		"CNI_IFNAME=" + ifName,
		"CNI_ARGS=" + args,
		"CNI_PATH=" + filepath.Dir(pluginPath),
		"PATH=/usr/bin:/bin",
	}
	cmd.Stdin = bytes.NewReader(c.Conf.JSON())
	return cmd
}

// do runs a call to completion.
func do(t testing.TB, c call) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.command(ctx)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return parseOutcome(t, c, stdout.Bytes(), stderr.Bytes(), err)
}

func parseOutcome(t testing.TB, c call, stdout, stderr []byte, runErr error) outcome {
	t.Helper()
	o := outcome{Stdout: stdout, Stderr: stderr}
	if runErr != nil {
		var e types.Error
		if err := json.Unmarshal(stdout, &e); err != nil || e.Code == 0 {
			t.Fatalf("%s %s: %v; stdout %q stderr %q", c.Cmd, c.ContainerID, runErr, stdout, stderr)
		}
		o.Err = &e
		return o
	}
	if len(stdout) > 0 && c.Cmd == "ADD" {
		if err := json.Unmarshal(stdout, &o.Result); err != nil {
			t.Fatalf("ADD %s: stdout is not a result: %q", c.ContainerID, stdout)
		}
	}
	return o
}

// mustOK fails the test on a CNI error.
func mustOK(t testing.TB, o outcome, what string) outcome {
	t.Helper()
	if o.Err != nil {
		t.Fatalf("%s: CNI error %d: %s; %s (stderr %s)", what, o.Err.Code, o.Err.Msg, o.Err.Details, o.Stderr)
	}
	return o
}

// --- cluster fixtures ---

func createNamespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := kc.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

func createNode(t testing.TB, name string, labels map[string]string) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := kc.Create(context.Background(), n); err != nil {
		panic(fmt.Sprintf("creating node %s: %v", name, err))
	}
}

func createPool(t testing.TB, name, cidr string, mutate func(*apiv1alpha1.IPPoolSpec)) {
	t.Helper()
	p := &apiv1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: apiv1alpha1.IPPoolSpec{CIDR: cidr, AssignmentMode: apiv1alpha1.AssignmentAutomatic}}
	if mutate != nil {
		mutate(&p.Spec)
	}
	if err := kc.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// frozen returns the annotations poolguard's webhook would freeze onto a
// pod naming v4 pools (nil: the defaults).
func frozen(v4 []string) map[string]string {
	prov := policy.Provenance{IPv4: policy.SourceDefault, IPv6: policy.SourceDefault}
	ann := map[string]string{}
	if v4 != nil {
		prov.IPv4 = policy.SourcePod
		ann[policy.AnnotationIPv4Pools] = policy.FormatPoolList(v4)
	}
	ann[policy.AnnotationProvenance] = prov.String()
	return ann
}

func createPod(t testing.TB, ns, name, node string, ann map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if err := kc.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func inPool(t testing.TB, addr netip.Addr, cidr string) {
	t.Helper()
	if !netip.MustParsePrefix(cidr).Contains(addr) {
		t.Fatalf("%s is not in %s", addr, cidr)
	}
}

func wantCode(t testing.TB, o outcome, code uint, contains ...string) {
	t.Helper()
	if o.Err == nil {
		t.Fatalf("succeeded (%s), want CNI error %d", o.Stdout, code)
	}
	if o.Err.Code != code {
		t.Fatalf("CNI error %d (%s: %s), want %d", o.Err.Code, o.Err.Msg, o.Err.Details, code)
	}
	for _, s := range contains {
		if !strings.Contains(o.Err.Msg+" "+o.Err.Details, s) {
			t.Errorf("error %q does not mention %q", o.Err.Details, s)
		}
	}
}
