package charts_test

import (
	"slices"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
)

// TestCertManagerObjects decodes the chart's cert-manager objects strictly
// with cert-manager's own Go types and checks the chain: a self-signed Issuer
// bootstraps the CA Certificate, a CA Issuer signs the serving Certificate,
// whose Secret is what the webhook mounts and whose name the webhook
// configurations ask the CA injector for.
func TestCertManagerObjects(t *testing.T) {
	r := render(t, "certificates.certManager.duration=720h", "certificates.certManager.renewBefore=240h")

	var selfSigned, caIssuer cmapi.Issuer
	var ca, serving cmapi.Certificate
	decodeStrict(t, r.get(t, "Issuer", fullname+"-selfsigned"), &selfSigned)
	decodeStrict(t, r.get(t, "Issuer", fullname+"-ca"), &caIssuer)
	decodeStrict(t, r.get(t, "Certificate", fullname+"-ca"), &ca)
	decodeStrict(t, r.get(t, "Certificate", webhookName), &serving)

	if selfSigned.Spec.SelfSigned == nil {
		t.Errorf("bootstrap Issuer is not self-signed: %+v", selfSigned.Spec)
	}
	if !ca.Spec.IsCA || ca.Spec.IssuerRef.Name != selfSigned.Name || ca.Spec.Duration == nil || ca.Spec.Duration.Duration != 43800*time.Hour {
		t.Errorf("CA Certificate = %+v", ca.Spec)
	}
	if caIssuer.Spec.CA == nil || caIssuer.Spec.CA.SecretName != ca.Spec.SecretName {
		t.Errorf("CA Issuer does not use the CA Certificate's Secret %q: %+v", ca.Spec.SecretName, caIssuer.Spec)
	}
	if serving.Spec.IssuerRef != (cmmeta.IssuerReference{Name: caIssuer.Name, Kind: "Issuer", Group: "cert-manager.io"}) {
		t.Errorf("serving Certificate issuer = %+v, want the CA Issuer", serving.Spec.IssuerRef)
	}
	if want := []string{webhookName + "." + namespace + ".svc", webhookName + "." + namespace + ".svc.cluster.local"}; !slices.Equal(serving.Spec.DNSNames, want) {
		t.Errorf("dnsNames = %v, want %v (the Service the webhook configurations call)", serving.Spec.DNSNames, want)
	}
	if serving.Spec.Duration.Duration != 720*time.Hour || serving.Spec.RenewBefore.Duration != 240*time.Hour {
		t.Errorf("duration %v renewBefore %v, want the values' 720h and 240h", serving.Spec.Duration, serving.Spec.RenewBefore)
	}
	if !slices.Contains(serving.Spec.Usages, cmapi.UsageServerAuth) || serving.Spec.IsCA {
		t.Errorf("serving Certificate usages %v isCA %v", serving.Spec.Usages, serving.Spec.IsCA)
	}
	if serving.Spec.PrivateKey == nil || serving.Spec.PrivateKey.RotationPolicy != cmapi.RotationPolicyAlways {
		t.Errorf("serving key is not rotated on renewal: %+v", serving.Spec.PrivateKey)
	}
	if serving.Spec.SecretName != tlsSecret {
		t.Errorf("serving Secret %q, want %q", serving.Spec.SecretName, tlsSecret)
	}
	if v := deployment(t, r).Spec.Template.Spec.Volumes[0]; v.Secret == nil || v.Secret.SecretName != serving.Spec.SecretName {
		t.Errorf("the webhook mounts %+v, not the serving Certificate's Secret %s", v, serving.Spec.SecretName)
	}
	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		if got := r.get(t, kind, fullname).GetAnnotations()["cert-manager.io/inject-ca-from"]; got != serving.Namespace+"/"+serving.Name {
			t.Errorf("%s injects the CA of %q, want %s/%s", kind, got, serving.Namespace, serving.Name)
		}
	}
}

// TestCertManagerExistingIssuer: with an issuerRef the chart brings no CA of
// its own and the serving Certificate uses the given issuer.
func TestCertManagerExistingIssuer(t *testing.T) {
	r := render(t, "certificates.certManager.issuerRef.kind=ClusterIssuer", "certificates.certManager.issuerRef.name=corp-ca", "certificates.certManager.issuerRef.group=cert-manager.io")
	if issuers := r.kinds("Issuer"); len(issuers) > 0 {
		t.Errorf("chart's own Issuers rendered with an existing issuer: %v", issuers)
	}
	if r.find("Certificate", fullname+"-ca") != nil {
		t.Errorf("chart's own CA rendered with an existing issuer")
	}
	var serving cmapi.Certificate
	decodeStrict(t, r.get(t, "Certificate", webhookName), &serving)
	if serving.Spec.IssuerRef != (cmmeta.IssuerReference{Name: "corp-ca", Kind: "ClusterIssuer", Group: "cert-manager.io"}) {
		t.Errorf("issuerRef = %+v", serving.Spec.IssuerRef)
	}
}
