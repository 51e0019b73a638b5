package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"poolguard.dev/poolguard/test/testpki"
)

// pki is the cluster's throwaway credentials, as files the components read.
type pki struct {
	dir string
	// CAFile signs and trusts every certificate of the cluster.
	CAFile string
	// ServingCert and ServingKey are the API server's.
	ServingCert, ServingKey string
	// SAKey signs service account tokens; SAPub verifies them.
	SAKey, SAPub string
	// Admin, ControllerManager, Scheduler, Kubelet and KubeProxy are
	// kubeconfigs with client certificates for each identity.
	Admin, ControllerManager, Scheduler, Kubelet, KubeProxy string

	ca *testpki.CA
}

// newPKI writes a CA, the API server's serving certificate for hosts, the
// service account key, and one kubeconfig per identity reaching server.
func newPKI(dir, server, nodeName string, hosts ...string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := testpki.NewCA("poolguard-cluster-ca")
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, ca: ca, CAFile: filepath.Join(dir, "ca.crt")}
	if err := os.WriteFile(p.CAFile, ca.CertPEM, 0o600); err != nil {
		return nil, err
	}
	serving, err := ca.Server(hosts...)
	if err != nil {
		return nil, err
	}
	if p.ServingCert, p.ServingKey, err = p.writePair("apiserver", serving); err != nil {
		return nil, err
	}
	if err := p.writeServiceAccountKey(); err != nil {
		return nil, err
	}
	// The identities the API server's bootstrap RBAC and the Node
	// authorizer expect.
	ids := []struct {
		file       *string
		name, user string
		groups     []string
	}{
		{&p.Admin, "admin", "poolguard-cluster-admin", []string{"system:masters"}},
		{&p.ControllerManager, "kube-controller-manager", "system:kube-controller-manager", nil},
		{&p.Scheduler, "kube-scheduler", "system:kube-scheduler", nil},
		{&p.Kubelet, "kubelet", "system:node:" + nodeName, []string{"system:nodes"}},
		// Bound to system:node-proxier by the bootstrap RBAC.
		{&p.KubeProxy, "kube-proxy", "system:kube-proxy", nil},
	}
	for _, id := range ids {
		pair, err := ca.ClientInGroups(id.user, id.groups...)
		if err != nil {
			return nil, err
		}
		cert, key, err := p.writePair(id.name, pair)
		if err != nil {
			return nil, err
		}
		if *id.file, err = p.writeKubeconfig(id.name, server, cert, key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pki) writePair(name string, pair testpki.Pair) (cert, key string, err error) {
	cert, key = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if err := os.WriteFile(cert, pair.CertPEM, 0o600); err != nil {
		return "", "", err
	}
	return cert, key, os.WriteFile(key, pair.KeyPEM, 0o600)
}

// writeServiceAccountKey writes the key pair the API server signs and
// verifies service account tokens with (and the controller manager signs
// legacy tokens with).
func (p *pki) writeServiceAccountKey() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	p.SAKey, p.SAPub = filepath.Join(p.dir, "sa.key"), filepath.Join(p.dir, "sa.pub")
	if err := os.WriteFile(p.SAKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(p.SAPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

func (p *pki) writeKubeconfig(name, server, cert, key string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: p.CAFile}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: cert, ClientKey: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(p.dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}
