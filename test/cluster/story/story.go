// Package story is poolguard's story on the real node of package cluster,
// as a user lives it: the chart's image built from this checkout, `helm
// install` of charts/poolguard, a Deployment in a namespace whose default is
// the range a legacy firewall trusts, the firewall's verdicts by real TCP
// connections, the refusals kubectl meets, a recreated sandbox and a static
// pod that keep their ranges, an upgrade under load and an uninstall.
//
// Each Step checks what it tells and returns an error when the product does
// not behave as told. Two drivers run the same steps: TestHelmInstallOnNode
// (make test, make test-cluster) as subtests, and the demo (make demo),
// which narrates the commands a person would type and their output.
package story

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/harness"
)

// The pools of the story: an Automatic pool for every pod that names none
// (the webhook's own pods included), and the range the legacy firewall
// trusts, which only the payments namespace may use. Both are routed to the
// node (cluster.RoutedNetwork).
var (
	General = netip.MustParsePrefix("198.51.100.0/24")
	Trusted = netip.MustParsePrefix("203.0.113.0/25")
)

// The release, and the story's namespaces and Deployments.
const (
	Release   = "poolguard"
	ReleaseNS = "poolguard-system"
	// Replicas of the payments Deployment.
	Replicas = 20
	// gcGrace and gcInterval are the collector's settings in the story's
	// values: short, so that a static pod visibly outlives the grace.
	gcGrace    = 10 * time.Second
	gcInterval = 2 * time.Second
)

// Network is the routed pod network the story's cluster needs.
func Network() *cluster.RoutedNetwork {
	return &cluster.RoutedNetwork{Ranges: []netip.Prefix{General, Trusted}}
}

// Step is one thing that happens, and the check that it did.
type Step struct {
	// Title says what happens, as a user would put it.
	Title string
	// Why, shown by the demo, explains what the step shows.
	Why string
	// Run does it and checks it.
	Run func(ctx context.Context) error
}

// Story is the state the steps share on one cluster.
type Story struct {
	c    *cluster.Cluster
	cl   client.Client
	helm charts.Helm
	rel  charts.Release
	// narrate, when set, is shown the commands a person would type and
	// their output; nil keeps them quiet (the test).
	narrate io.Writer
	logf    func(format string, args ...any)

	paymentsPods, shopPods []corev1.Pod
	// fw is the legacy firewall, started by the firewall step.
	fw *cluster.Firewall
}

// New prepares the story on c, whose network must be Network(). narrate
// (optional) is shown commands and outputs; logf is told the figures.
func New(c *cluster.Cluster, narrate io.Writer, logf func(format string, args ...any)) (*Story, error) {
	cl, err := harness.Client(c.Config)
	if err != nil {
		return nil, err
	}
	values, err := Values(c)
	if err != nil {
		return nil, err
	}
	return &Story{
		c: c, cl: cl, helm: c.Helm(), narrate: narrate, logf: logf,
		rel: charts.Release{Name: Release, Namespace: ReleaseNS, Values: values},
	}, nil
}

// Steps are the story, in order; each needs the ones before it.
func (s *Story) Steps() []Step {
	return []Step{
		{"The chart's image is built from this checkout and imported into containerd",
			"No Docker engine: the image is assembled from static Go binaries with go-containerregistry, for this platform, under the name the chart's defaults give.",
			s.importImage},
		{"helm install: the installer makes the node Ready and the webhook becomes available",
			"The node has no CNI configuration yet (NotReady). The installer DaemonSet (host network) writes poolguard-ipam, its node-bound kubeconfig and the node's network configuration; then the webhook's pods start, with addresses from poolguard-ipam.",
			s.install},
		{"The installer wrote the node's CNI configuration", "", s.checkInstallerConfig},
		{"The webhook's pods got their addresses from poolguard-ipam", "", s.checkWebhookPods},
		{"The plugin's credential is bound to the node",
			"A TokenRequest token of the plugin's account, bound to this Node: every request a node's plugin makes carries the node's name.",
			s.checkCredential},
		{"A Deployment in the trusted namespace gets addresses from the trusted pool",
			"The payments namespace's default is the pool the firewall trusts; shop has no default and gets the Automatic pool.",
			s.deployments},
		{"The firewall lets the payments pods through and refuses the others",
			"A legacy firewall trusts " + Trusted.String() + " and nothing else (nftables, in its own network namespace on the node's routes).",
			s.firewall},
		{"kubectl apply of a pod naming a forbidden pool is refused", "", s.forbiddenPool},
		{"A late kubectl annotate is refused", "", s.lateAnnotate},
		{"A recreated sandbox keeps its pool after the namespace default moved",
			"The payments owner points the namespace at the general pool; then a pod's sandbox is killed and the kubelet recreates it: the pod keeps the range it was admitted with.",
			s.recreatedSandbox},
		{"Deleting pods releases their addresses", "", s.release},
		{"A firewall trusts the payments namespace, fed by poolguard's live export; who-had names a pod after it is gone",
			"Payments now defaults to the general pool, which shop's pods share. The firewall polls the export of namespace payments every second (HTTPS, a token of its own ServiceAccount that may read that one list) into an nftables set: a payments pod of the general pool is let through, a shop pod of the same pool is refused. The payments pod is deleted; the set follows; kubectl poolguard who-had names it for the address and time the firewall logged.",
			s.exportFirewall},
		{"A static pod gets an address and keeps it past the garbage collector's grace period",
			fmt.Sprintf("The kubelet runs static pods under their own UID; the API shows a mirror pod with another. The collector (grace %s, a sweep every %s) must not take the address away.", gcGrace, gcInterval),
			s.staticPod},
		{"helm upgrade rolls the installer and the webhook without a failed pod create",
			"A pod is created every 250 ms until the old replicas are gone.",
			s.upgrade},
		{"helm uninstall leaves no poolguard object but the pools and CRDs",
			"The pools outlive the release: a pool with allocations must not vanish with the chart (helm keeps CRDs).",
			s.uninstall},
		{"helm install with cert-manager: its controllers issue the webhook's certificate and inject the CA",
			"The chart's default certificates: a self-signed Issuer, a CA Certificate, a CA Issuer and the serving Certificate, with cert-manager.io/inject-ca-from on both webhook configurations. cert-manager's own controllers and CA injector run in this process (its controller binary's module is not served by the Go module proxy; the controllers are in the module poolguard already uses).",
			s.certManagerInstall},
	}
}

// kubectl runs kubectl as the cluster's admin, in the node's network
// namespace, and narrates it.
func (s *Story) kubectl(args ...string) (string, error) {
	argv := s.c.NodeArgv(filepath.Join(harness.BinDir(), "kubectl"), append([]string{"--kubeconfig", s.c.AdminKubeconfig()}, args...)...)
	cmd := exec.Command("nsenter", argv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		// What kubectl said is the error a person reads.
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	s.say("$ kubectl %s\n%s", strings.Join(args, " "), indent(out.String()+errOut.String()))
	return out.String(), err
}

// show runs a kubectl command only for the demo's reader.
func (s *Story) show(args ...string) {
	if s.narrate != nil {
		_, _ = s.kubectl(args...)
	}
}

func (s *Story) say(format string, args ...any) {
	if s.narrate != nil {
		fmt.Fprintf(s.narrate, format+"\n", args...)
	}
}

// indent is a command's output as the demo shows it.
func indent(out string) string {
	text := strings.TrimRight(out, "\n")
	if text == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(text, "\n", "\n    ")
}
