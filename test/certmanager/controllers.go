package certmanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/cert-manager/cert-manager/pkg/controller"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The Issuer implementations the issuers and clusterissuers controllers
	// set up (and mark Ready), registered by import as the controller
	// binary imports them; ACME, Vault and Venafi are left out.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// controllers are the cert-manager controllers run, by the names they
// register under (importing their packages registers them with
// controller.Known). They are the binary's default set
// (DefaultEnabledControllers) less ACME, Vault, Venafi, the
// ingress/gateway shims and the certificates metrics exporter.
var controllers = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	crapprover.ControllerName,
	crca.CRControllerName,
	crselfsigned.CRControllerName,
	trigger.ControllerName,
	issuing.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

// clusterScoped are the controllers the binary does not run when scoped to
// one namespace.
var clusterScoped = map[string]bool{clusterissuers.ControllerName: true}

// startControllers builds the controllers' context factory and the
// controllers, as cert-manager's controller binary does (controller-binary
// app.Run and buildControllerContextFactory), and runs them in r: each
// controller's Run, then the shared informer factories once every
// controller has registered its informers, and the factories' Shutdown
// once the controllers have returned.
func startControllers(r *runner, cfg *rest.Config, opts Options) error {
	ctx := logf.NewContext(r.ctx, opts.Logger, "controller")

	// The factory loads its REST config only from a kubeconfig file (or
	// in-cluster), as the binary's --kubeconfig; write one for cfg, read
	// once by NewContextFactory.
	kubeconfig, cleanup, err := writeKubeconfig(cfg)
	if err != nil {
		return err
	}
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   defaultKubernetesAPIQPS,
		KubernetesAPIBurst: defaultKubernetesAPIBurst,
		Namespace:          opts.Namespace,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: opts.ClusterResourceNamespace,
			// The binary's defaults. Neither matters to the self-signed
			// and CA issuers, which use no credentials.
			ClusterIssuerAmbientCredentials: true,
			IssuerAmbientCredentials:        false,
		},
		CertificateOptions: controller.CertificateOptions{
			// The binary's defaults: Secrets outlive their Certificate;
			// all annotations but kubectl's, Flux's and Argo CD's are
			// copied to CertificateRequests; a failed issuance is retried
			// after 1h, backing off up to 32h.
			EnableOwnerRef:                           false,
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
		// ACMEOptions, IngressShimOptions and SchedulerOptions configure
		// controllers not run here. Gateway API support stays off (the
		// binary's default), so no Gateway API CRDs are needed.
		//
		// Feature gates keep cert-manager's defaults (the binary's
		// --feature-gates is unset in cert-manager's chart); among them
		// SecretsFilteredCaching, which makes the Secrets informer cache
		// full data only for Secrets cert-manager labels as its own.
	})
	cleanup()
	if err != nil {
		return err
	}
	// The binary's base context, whose informer factories are the ones
	// every controller's context shares.
	base, err := factory.Build()
	if err != nil {
		return err
	}

	// controller.Known is filled by the imports' init functions and only
	// read afterwards.
	known := controller.Known()
	type built struct {
		name string
		ctrl controller.Interface
	}
	var run []built
	for _, name := range controllers {
		if opts.Namespace != "" && clusterScoped[name] {
			continue
		}
		constructor, ok := known[name]
		if !ok {
			return fmt.Errorf("controller %s is not registered", name)
		}
		iface, err := constructor(factory)
		if err != nil {
			return fmt.Errorf("constructing controller %s: %w", name, err)
		}
		run = append(run, built{name, iface})
	}

	r.goRun("controllers", func(context.Context) error {
		var wg sync.WaitGroup
		for _, c := range run {
			wg.Go(func() {
				if err := c.ctrl.Run(opts.Workers, ctx); err != nil {
					r.fail(fmt.Errorf("controller %s: %w", c.name, err))
				}
			})
		}
		// Started after the controllers have registered their informers,
		// as the binary does; Start is a no-op for a factory nobody asked
		// an informer of.
		base.SharedInformerFactory.Start(ctx.Done())
		base.KubeSharedInformerFactory.Start(ctx.Done())
		base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
		wg.Wait()
		base.HTTP01ResourceMetadataInformersFactory.Shutdown()
		base.KubeSharedInformerFactory.Shutdown()
		base.SharedInformerFactory.Shutdown()
		return nil
	})
	return nil
}

// writeKubeconfig writes cfg as a kubeconfig file readable only by this
// user, and returns its path and a function that removes it.
func writeKubeconfig(cfg *rest.Config) (string, func(), error) {
	if cfg.WrapTransport != nil || cfg.Dial != nil || cfg.Proxy != nil || cfg.Transport != nil {
		return "", nil, errors.New("the REST config has settings a kubeconfig cannot carry (a transport, dialer or proxy function)")
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		TLSServerName:            cfg.ServerName,
		InsecureSkipTLSVerify:    cfg.Insecure,
		CertificateAuthority:     cfg.CAFile,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		ClientCertificate:     cfg.CertFile,
		ClientCertificateData: cfg.CertData,
		ClientKey:             cfg.KeyFile,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
		TokenFile:             cfg.BearerTokenFile,
		Username:              cfg.Username,
		Password:              cfg.Password,
		Impersonate:           cfg.Impersonate.UserName,
		ImpersonateUID:        cfg.Impersonate.UID,
		ImpersonateGroups:     cfg.Impersonate.Groups,
		ImpersonateUserExtra:  cfg.Impersonate.Extra,
		AuthProvider:          cfg.AuthProvider,
		Exec:                  cfg.ExecProvider,
	}
	kc.Contexts["context"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user"}
	kc.CurrentContext = "context"
	dir, err := os.MkdirTemp("", "cert-manager-kubeconfig-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}
