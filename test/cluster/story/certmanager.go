package story

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/certmanager"
	"poolguard.dev/poolguard/test/cluster"
)

// certManagerInstall installs the chart again, now with its default
// certificates: cert-manager's own controllers (package certmanager, run in
// this process because cert-manager's controller binary is not served by
// the Go module proxy) issue the webhook's serving certificate from the
// chart's self-signed CA and inject that CA into the webhook
// configurations; a pod created afterwards is admitted over that TLS.
func (s *Story) certManagerInstall(ctx context.Context) (err error) {
	cfg, stopForward, err := s.c.RootConfig()
	if err != nil {
		return err
	}
	defer stopForward()
	start := time.Now()
	if err := certmanager.InstallCRDs(ctx, cfg); err != nil {
		return err
	}
	stop, err := certmanager.Start(ctx, cfg, certmanager.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop()) }()
	s.logf("cert-manager's CRDs installed and its controllers and CA injector started in %s", time.Since(start).Round(time.Millisecond))

	// The internal mode's Secret outlives helm uninstall on purpose
	// (chart README); cert-manager does not adopt a Secret it did not
	// write, and its CA injector refuses one without its
	// cert-manager.io/certificate-name annotation: switching modes
	// starts from a new Secret.
	s.say("# switching from internal certificates: the internal mode's Secret stays after uninstall, and cert-manager does not adopt it")
	if _, err := s.kubectl("-n", ReleaseNS, "delete", "secret", Release+"-webhook-tls", "--ignore-not-found"); err != nil {
		return err
	}
	rel := s.rel
	rel.Set = []string{"certificates.mode=cert-manager"}
	s.say("$ helm install %s charts/poolguard --namespace %s --values values.yaml --set certificates.mode=cert-manager", rel.Name, rel.Namespace)
	start = time.Now()
	if out, err := s.helm.Install(rel, false); err != nil {
		return fmt.Errorf("helm install: %w\n%s", err, out)
	}
	if _, err := s.kubectl("-n", ReleaseNS, "wait", "--for=condition=Ready", "certificates.cert-manager.io", "--all", "--timeout=2m"); err != nil {
		return err
	}
	if err := waitFor(ctx, "the webhook Deployment available", 5*time.Minute, func() (bool, error) {
		return s.rolledOut(ctx, ReleaseNS, Release+"-webhook")
	}); err != nil {
		return err
	}
	s.logf("helm install with cert-manager to webhook available: %s", time.Since(start).Round(time.Millisecond))

	// The CA the webhook's certificate chains to is what the API server
	// trusts for both configurations.
	serving, err := s.c.Client.CoreV1().Secrets(ReleaseNS).Get(ctx, Release+"-webhook-tls", metav1.GetOptions{})
	if err != nil {
		return err
	}
	ca := serving.Data["ca.crt"]
	if len(ca) == 0 || len(serving.Data["tls.crt"]) == 0 {
		return fmt.Errorf("cert-manager's Secret %s has no certificate or CA: %v", serving.Name, keys(serving.Data))
	}
	var bundles int
	if err := waitFor(ctx, "cert-manager's CA injected into the release's webhook configurations", time.Minute, func() (bool, error) {
		bundles = 0
		sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + Release}
		muts, err := s.c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, sel)
		if err != nil {
			return false, err
		}
		vals, err := s.c.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, sel)
		if err != nil {
			return false, err
		}
		var configs []admissionregistrationv1.WebhookClientConfig
		for _, m := range muts.Items {
			for _, w := range m.Webhooks {
				configs = append(configs, w.ClientConfig)
			}
		}
		for _, v := range vals.Items {
			for _, w := range v.Webhooks {
				configs = append(configs, w.ClientConfig)
			}
		}
		for _, cc := range configs {
			if !bytes.Equal(cc.CABundle, ca) {
				return false, fmt.Errorf("a webhook of the release does not trust cert-manager's CA (caBundle of %d bytes)", len(cc.CABundle))
			}
			bundles++
		}
		return bundles > 0, errors.New("no webhook configuration of the release")
	}); err != nil {
		return err
	}
	s.say("cert-manager's CA is injected into the release's %d webhooks", bundles)

	if _, err := s.kubectl("-n", "payments", "run", "after-cert-manager", "--image="+cluster.PauseImage); err != nil {
		return err
	}
	p, err := s.c.Client.CoreV1().Pods("payments").Get(ctx, "after-cert-manager", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if p.Annotations[policy.AnnotationProvenance] == "" || !strings.Contains(p.Annotations[policy.AnnotationIPv4Pools], "general") {
		return fmt.Errorf("pod created with cert-manager's certificates not frozen by the webhook: %v", p.Annotations)
	}
	s.show("-n", "payments", "get", "pod", "after-cert-manager", "-o", `jsonpath={.metadata.annotations}{"\n"}`)
	return s.uninstall(ctx)
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
