package story

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/test/cluster"
)

// Values are the chart values of the story: the chart's defaults but for
// this node's CNI directories and network, two webhook replicas on the one
// node, certificates without cert-manager, and the story's pools.
func Values(c *cluster.Cluster) (string, error) {
	values := map[string]any{
		"certificates": map[string]any{"mode": "internal"},
		// A short grace, for the static pod to outlive it in the story.
		"allocator": map[string]any{"gc": map[string]any{"gracePeriod": gcGrace.String(), "interval": gcInterval.String()}},
		"webhook":   map[string]any{"replicas": 2},
		"cni": map[string]any{
			"binDir":            c.CNIBinDir(),
			"confDir":           c.CNIConfDir(),
			"networkConfigName": networkConfigName(c),
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
			map[string]any{"name": "general", "spec": map[string]any{"cidr": General.String(), "assignmentMode": "Automatic"}},
			map[string]any{"name": "trusted", "spec": map[string]any{
				"cidr": Trusted.String(), "assignmentMode": "Manual",
				"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "payments"}},
			}},
		},
	}
	b, err := yaml.Marshal(values)
	return string(b), err
}

func networkConfigName(c *cluster.Cluster) string { return "10-" + c.Name + ".conflist" }

// pluginKubeconfig is where the installer writes the plugin's kubeconfig.
func (s *Story) pluginKubeconfig() string {
	return filepath.Join(s.c.CNIConfDir(), "poolguard", "poolguard-kubeconfig")
}

func (s *Story) importImage(context.Context) error {
	image, err := cluster.ChartImage()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := s.c.ImportPoolguardImage(image); err != nil {
		return err
	}
	s.logf("image %s built for this platform and imported in %s", image, time.Since(start).Round(time.Millisecond))
	return nil
}

func (s *Story) install(ctx context.Context) error {
	s.say("values.yaml:\n%s", indent(s.rel.Values))
	s.say("$ helm install %s charts/poolguard --namespace %s --create-namespace --values values.yaml", s.rel.Name, s.rel.Namespace)
	start := time.Now()
	out, err := s.helm.Install(s.rel, false, "--create-namespace")
	if err != nil {
		return fmt.Errorf("helm install: %w\n%s", err, out)
	}
	s.say("%s", indent(firstLines(string(out), 6)))
	if err := waitFor(ctx, "the node Ready (the installer wrote the CNI configuration)", 3*time.Minute, func() (bool, error) {
		return s.c.WaitNodeReady(time.Second) == nil, fmt.Errorf("not Ready; installer: %s", s.podSummary(ctx, ReleaseNS))
	}); err != nil {
		return err
	}
	if err := waitFor(ctx, "the webhook Deployment available", 5*time.Minute, func() (bool, error) {
		return s.rolledOut(ctx, ReleaseNS, Release+"-webhook")
	}); err != nil {
		return err
	}
	s.logf("helm install to node Ready and webhook available: %s", time.Since(start).Round(time.Millisecond))
	s.show("get", "nodes")
	s.show("-n", ReleaseNS, "get", "pods", "-o", "wide")
	return nil
}

func (s *Story) checkInstallerConfig(context.Context) error {
	b, err := os.ReadFile(filepath.Join(s.c.CNIConfDir(), networkConfigName(s.c)))
	if err != nil {
		return err
	}
	s.say("$ cat %s\n%s", filepath.Join(s.c.CNIConfDir(), networkConfigName(s.c)), indent(string(b)))
	var conf struct {
		Plugins []struct {
			IPAM map[string]any `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		return err
	}
	if len(conf.Plugins) == 0 {
		return fmt.Errorf("no plugins in the installer's configuration: %s", b)
	}
	ipam := conf.Plugins[0].IPAM
	if ipam["type"] != "poolguard-ipam" || ipam["nodeName"] != s.c.NodeName || ipam["kubeconfig"] != s.pluginKubeconfig() {
		return fmt.Errorf("the installer did not fill in the plugin's node and kubeconfig: %v", ipam)
	}
	if _, err := os.Stat(filepath.Join(s.c.CNIBinDir(), "poolguard-ipam")); err != nil {
		return fmt.Errorf("poolguard-ipam not installed: %w", err)
	}
	return nil
}

func (s *Story) checkWebhookPods(ctx context.Context) error {
	pods, err := s.listPods(ctx, ReleaseNS, "app.kubernetes.io/component=webhook")
	if err != nil {
		return err
	}
	if len(pods) < 2 {
		return fmt.Errorf("%d webhook pods, want 2", len(pods))
	}
	var errs []error
	for _, p := range pods {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !General.Contains(ip) {
			errs = append(errs, fmt.Errorf("webhook pod %s has %q, outside the Automatic pool %s", p.Name, p.Status.PodIP, General))
			continue
		}
		if ok, err := s.claimed(ctx, p, "general"); !ok {
			errs = append(errs, fmt.Errorf("webhook pod %s's address %s has no IPAMClaim from pool general (%v)", p.Name, ip, err))
		}
	}
	s.show("get", "ipamclaims.ipam.poolguard.dev", "-A")
	return errors.Join(errs...)
}

func (s *Story) checkCredential(context.Context) error {
	out, err := s.kubectl("--kubeconfig", s.pluginKubeconfig(), "auth", "whoami", "-o", "json")
	if err != nil {
		return err
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
		return err
	}
	u := review.Status.UserInfo
	if u.Username != "system:serviceaccount:"+ReleaseNS+":"+Release+"-cni" || !slices.Equal(u.Extra["authentication.kubernetes.io/node-name"], []string{s.c.NodeName}) {
		return fmt.Errorf("the plugin authenticates as %s with %v; want the plugin's account bound to node %s", u.Username, u.Extra, s.c.NodeName)
	}
	return nil
}

// firstLines is at most n lines of text.
func firstLines(text string, n int) string {
	lines := strings.SplitN(text, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
