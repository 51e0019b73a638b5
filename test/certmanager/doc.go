// Package certmanager runs cert-manager's own upstream controllers and CA
// injector in-process, against any API server, for tests of what poolguard's
// chart asks of cert-manager in its default certificates mode: a self-signed
// Issuer, a CA Certificate, a CA Issuer, a serving Certificate, and the
// cert-manager.io/inject-ca-from annotation on the webhook configurations.
//
// It exists because cert-manager's controller binary cannot be built here:
// its module (github.com/cert-manager/cert-manager/cmd/controller) is not
// served by the Go module proxy, while the controllers themselves live in
// the main module github.com/cert-manager/cert-manager, which poolguard
// already requires. Start wires those controllers the way the binaries'
// cmd/controller/app and cmd/cainjector/app do, so that a test sees the
// same reconcilers, the same informers and the same defaults as a
// cert-manager Deployment, rather than a reimplementation of them.
//
// Only what the chart needs runs: the certificates controllers (trigger,
// issuing, keymanager, requestmanager, readiness, revisionmanager), the
// Issuer and ClusterIssuer controllers, the CertificateRequest approver,
// and the self-signed and CA CertificateRequest issuers; the CA injector
// serves Mutating- and ValidatingWebhookConfigurations. ACME, Vault and
// Venafi are left out, and so are cert-manager's own admission webhook,
// leader election, and the metrics, healthz and profiling servers.
//
// InstallCRDs applies cert-manager's CRDs from the same module version the
// controllers are compiled from.
package certmanager
