package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// ErrClientAuthWithoutWebhook: ClientAuth configures how the API server
// calls a webhook, so it needs Webhook or ExternalWebhook.
var ErrClientAuthWithoutWebhook = errors.New("harness: ClientAuth needs Webhook or ExternalWebhook")

// ClientAuth makes the API server authenticate to the webhook with a
// client certificate, as a cluster does per Kubernetes' "Authenticate
// apiservers": an AdmissionConfiguration (--admission-control-config-file)
// gives both webhook admission plugins a kubeconfig whose user, keyed by
// the webhook's host:port (envtest registers URL webhooks), holds the
// certificate. With Options.Webhook the in-process webhook requires a
// client certificate signed by CAPEM; with ExternalWebhook the caller passes
// Env.ClientCAFile to its webhook.
type ClientAuth struct {
	// CAPEM is the CA bundle the webhook trusts for client certificates.
	CAPEM []byte
	// CertPEM and KeyPEM are the client certificate the API server
	// presents; nil: the API server presents none (to show that the
	// webhook then refuses it).
	CertPEM, KeyPEM []byte
	// AllowedNames are the names the webhook accepts (empty: any the CA
	// signed).
	AllowedNames []string
}

// configure writes the CA bundle, the API server's kubeconfig and its
// AdmissionConfiguration into dir, fixes the webhook's port (the kubeconfig
// names it, and the API server reads it once, at start), and points the API
// server at the configuration. It returns the CA bundle's path.
func (a *ClientAuth) configure(te *envtest.Environment, dir string) (string, error) {
	wio := &te.WebhookInstallOptions
	if wio.LocalServingPort == 0 {
		port, err := freeLoopbackPort(wio.LocalServingHost)
		if err != nil {
			return "", err
		}
		wio.LocalServingPort = port
	}
	target := net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort))

	caFile := filepath.Join(dir, "webhook-client-ca.crt")
	user := map[string]any{}
	if a.CertPEM != nil {
		user["client-certificate-data"] = a.CertPEM
		user["client-key-data"] = a.KeyPEM
	}
	kubeconfig := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"users":      []any{map[string]any{"name": target, "user": user}},
	}
	plugin := func(name string) map[string]any {
		return map[string]any{"name": name, "configuration": map[string]any{
			"apiVersion":     "apiserver.config.k8s.io/v1",
			"kind":           "WebhookAdmissionConfiguration",
			"kubeConfigFile": filepath.Join(dir, "admission-kubeconfig"),
		}}
	}
	admission := map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1",
		"kind":       "AdmissionConfiguration",
		"plugins":    []any{plugin("ValidatingAdmissionWebhook"), plugin("MutatingAdmissionWebhook")},
	}
	for name, v := range map[string]any{"admission-kubeconfig": kubeconfig, "admission-configuration.yaml": admission} {
		b, err := yaml.Marshal(v)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(caFile, a.CAPEM, 0o600); err != nil {
		return "", err
	}
	te.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", filepath.Join(dir, "admission-configuration.yaml"))
	return caFile, nil
}

// freeLoopbackPort returns a TCP port nothing listens on right now.
func freeLoopbackPort(host string) (int, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("choosing the webhook's port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
