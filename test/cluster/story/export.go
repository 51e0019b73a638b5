package story

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"poolguard.dev/poolguard/allocator/history/archive"
	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/netlab"
)

// The firewall that trusts a namespace: its table, the set the export
// fills (the export names it <exportSet>_v4) and the identity it polls as.
const (
	exportTable    = "legacy_firewall"
	exportSet      = "payments"
	firewallSA     = "edge-firewall"
	firewallRole   = "payments-export"
	exportPollTick = time.Second
)

// exportFirewall: the legacy firewall trusts the pods of namespace payments
// instead of a range. It polls poolguard's live export for that namespace
// (a bearer token of its own ServiceAccount, allowed to read that list and
// nothing else) and loads it into an nftables set. Payments now defaults to
// the general pool, which shop's pods share: a payments pod there is let
// through, a shop pod of the same pool is refused. The payments pod is
// deleted; the firewall's set follows; who-had names the pod for the
// address and time the firewall logged.
func (s *Story) exportFirewall(ctx context.Context) (err error) {
	fw := s.fw
	if fw == nil {
		return errors.New("the firewall step did not run")
	}
	defer fw.Close()
	if _, err := s.kubectl("-n", "payments", "run", "ledger", "--image="+cluster.PauseImage, "--image-pull-policy=Never", "--restart=Never"); err != nil {
		return err
	}
	var ledger *corev1.Pod
	if err := waitFor(ctx, "payments/ledger Running", 2*time.Minute, func() (bool, error) {
		var err error
		if ledger, err = s.c.Client.CoreV1().Pods("payments").Get(ctx, "ledger", metav1.GetOptions{}); err != nil {
			return false, err
		}
		return isReady(ledger) && ledger.Status.PodIP != "", fmt.Errorf("ready %v, IP %q", isReady(ledger), ledger.Status.PodIP)
	}); err != nil {
		return err
	}
	ip := netip.MustParseAddr(ledger.Status.PodIP)
	shopIP := netip.MustParseAddr(s.shopPods[0].Status.PodIP)
	if !General.Contains(ip) || !General.Contains(shopIP) {
		return fmt.Errorf("payments/ledger has %s and shop/%s %s: both should be in the general pool %s", ip, s.shopPods[0].Name, shopIP, General)
	}

	token, err := s.firewallIdentity(ctx)
	if err != nil {
		return err
	}
	get, stopGet, err := s.exportClient(ctx, token)
	if err != nil {
		return err
	}
	defer stopGet()
	query := fmt.Sprintf("/v1/namespaces/payments/addresses?format=nft&family=4&table=%s&set=%s", exportTable, exportSet)
	script, err := get(query)
	if err != nil {
		return err
	}
	s.say("$ curl -H \"Authorization: Bearer $TOKEN\" 'https://%s-webhook.%s.svc:8444%s'\n%s", Release, ReleaseNS, query, indent(script))
	// The range rules go; the export's first load creates the table and
	// set, and the firewall's own chain then accepts what the set holds.
	if err := fw.Load("delete table inet " + exportTable + "\n" + script); err != nil {
		return err
	}
	if err := fw.Load(fmt.Sprintf("add chain inet %[1]s input { type filter hook input priority filter; policy accept; }\n"+
		"add rule inet %[1]s input tcp dport %[2]d ip saddr @%[3]s_v4 accept\n"+
		"add rule inet %[1]s input tcp dport %[2]d reject with tcp reset\n", exportTable, cluster.FirewallPort, exportSet)); err != nil {
		return err
	}
	// The firewall's poller, as PAN-OS or a cron job would run it.
	pollCtx, stopPoll := context.WithCancel(ctx)
	var (
		pollMu  sync.Mutex
		pollErr error
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-time.After(exportPollTick):
			}
			script, err := get(query)
			if err == nil {
				err = fw.Load(script)
			}
			pollMu.Lock()
			pollErr = err
			pollMu.Unlock()
		}
	}()
	defer func() {
		stopPoll()
		wg.Wait()
	}()

	ns, err := s.c.PodNetns(ip)
	if err != nil {
		return err
	}
	seen, err := netlab.Connect(ns, fw.Addr)
	logged := time.Now()
	if err != nil || seen != ip {
		return fmt.Errorf("payments pod ledger (%s) in the general pool: firewall saw %s, %v; want it let through by namespace", ip, seen, err)
	}
	s.say("payments/ledger (%s, pool general) connects to %s: accepted; the firewall logs source %s at %s", ip, fw.Addr, seen, logged.Format(time.RFC3339))
	shopNs, err := s.c.PodNetns(shopIP)
	if err != nil {
		return err
	}
	if _, err := netlab.Connect(shopNs, fw.Addr); err == nil || !strings.Contains(err.Error(), "refused") {
		return fmt.Errorf("shop pod %s (%s), same pool, reached the firewall that trusts namespace payments: %v", s.shopPods[0].Name, shopIP, err)
	}
	s.say("shop/%s (%s, pool general too) connects to %s: refused", s.shopPods[0].Name, shopIP, fw.Addr)

	if _, err := s.kubectl("-n", "payments", "delete", "pod", "ledger", "--wait"); err != nil {
		return err
	}
	deleted := time.Now()
	if err := waitFor(ctx, "the firewall's set without "+ip.String(), 30*time.Second, func() (bool, error) {
		set, err := fw.List("set", "inet", exportTable, exportSet+"_v4")
		pollMu.Lock()
		defer pollMu.Unlock()
		if err == nil {
			err = pollErr
		}
		return err == nil && !strings.Contains(set, ip.String()), fmt.Errorf("set: %s (poll: %v)", set, err)
	}); err != nil {
		return err
	}
	s.logf("export to firewall: %s left the firewall's set %s after its pod was deleted (polling every %s)", ip, time.Since(deleted).Round(100*time.Millisecond), exportPollTick)

	at := logged.UTC().Format(time.RFC3339)
	out, err := s.kubectlPoolguard(ctx, "who-had", ip.String(), "--at", at)
	if err != nil {
		return err
	}
	if !strings.Contains(out, " payments ") || !strings.Contains(out, " ledger ") || !strings.Contains(out, string(ledger.UID)) {
		return fmt.Errorf("who-had %s --at %s does not name payments/ledger (%s):\n%s", ip, at, ledger.UID, out)
	}
	recs, err := archive.WhoHad(ctx, s.cl, ip, logged)
	if err != nil {
		return err
	}
	if len(recs) != 1 || recs[0].Open() || recs[0].Node != s.c.NodeName {
		return fmt.Errorf("who had %s at %s: %+v, want payments/ledger, released, on node %s", ip, at, recs, s.c.NodeName)
	}
	return nil
}

// firewallIdentity creates the firewall's ServiceAccount, allowed to read
// the payments namespace's export and nothing else, and returns a token.
func (s *Story) firewallIdentity(ctx context.Context) (string, error) {
	if _, err := s.kubectl("-n", ReleaseNS, "create", "serviceaccount", firewallSA); err != nil {
		return "", err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: firewallRole},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"ipam.poolguard.dev"}, Resources: []string{"exports/namespaces"}, ResourceNames: []string{"payments"}, Verbs: []string{"get"}}},
	}
	if _, err := s.c.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	s.say("# ClusterRole %s: get exports/namespaces, resourceNames [payments]", firewallRole)
	if _, err := s.kubectl("create", "clusterrolebinding", firewallRole, "--clusterrole="+firewallRole, "--serviceaccount="+ReleaseNS+":"+firewallSA); err != nil {
		return "", err
	}
	tr, err := s.c.Client.CoreV1().ServiceAccounts(ReleaseNS).CreateToken(ctx, firewallSA,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// exportClient returns a GET of the export as the firewall does it: HTTPS
// to a webhook pod's export port, verifying the serving certificate
// against the CA the release injected into its webhook configuration,
// for the Service's name, with the bearer token.
func (s *Story) exportClient(ctx context.Context, token string) (func(path string) (string, error), func(), error) {
	pods, err := s.listPods(ctx, ReleaseNS, "app.kubernetes.io/component=webhook")
	if err != nil || len(pods) == 0 {
		return nil, nil, fmt.Errorf("webhook pods: %d, %v", len(pods), err)
	}
	mw, err := s.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, Release, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	if len(mw.Webhooks) == 0 || !roots.AppendCertsFromPEM(mw.Webhooks[0].ClientConfig.CABundle) {
		return nil, nil, errors.New("no CA in the release's MutatingWebhookConfiguration")
	}
	addr, stop, err := netlab.Forward("", "127.0.0.1:0", s.c.NodeNetnsPath(), netip.AddrPortFrom(netip.MustParseAddr(pods[0].Status.PodIP), 8444).String())
	if err != nil {
		return nil, nil, err
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: Release + "-webhook." + ReleaseNS + ".svc", MinVersion: tls.VersionTLS12,
	}}}
	get := func(path string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return "", err
		}
		if res.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %s: %s", path, res.Status, body)
		}
		return string(body), nil
	}
	return get, func() { hc.CloseIdleConnections(); stop() }, nil
}

// kubectlPoolguard runs the kubectl plugin, built from this checkout, as
// the cluster's admin inside the node's network namespace, and narrates
// it as the kubectl command a person types.
func (s *Story) kubectlPoolguard(ctx context.Context, args ...string) (string, error) {
	bin := filepath.Join(s.c.Dir, "kubectl-poolguard")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "poolguard.dev/poolguard/cmd/kubectl-poolguard").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building kubectl-poolguard: %w: %s", err, out)
	}
	out, err := s.c.InNode(bin, append([]string{"--kubeconfig", s.c.AdminKubeconfig()}, args...)...)
	s.say("$ kubectl poolguard %s\n%s", strings.Join(args, " "), indent(out))
	if err != nil {
		return out, fmt.Errorf("kubectl poolguard %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}
