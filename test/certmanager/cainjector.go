package certmanager

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"github.com/cert-manager/cert-manager/pkg/util"
)

// startCAInjector builds the CA injector's controller-runtime manager and
// reconcilers as cert-manager's cainjector binary does (cainjector app.Run)
// and runs the manager in r.
//
// Of the binary's injectables only webhook configurations are served (it
// also serves APIServices and CRDs' conversion webhooks by default), with
// both its CA sources: Certificates (cert-manager.io/inject-ca-from) and
// Secrets (cert-manager.io/inject-ca-from-secret).
func startCAInjector(r *runner, cfg *rest.Config, opts Options) error {
	log := opts.Logger.WithName("cainjector")
	restConfig := util.RestConfigWithUserAgent(cfg, "cainjector")

	var namespaces map[string]cache.Config
	if opts.Namespace != "" {
		namespaces = map[string]cache.Config{opts.Namespace: {}}
	}
	scheme := kruntime.NewScheme()
	for _, add := range []func(*kruntime.Scheme) error{
		clientgoscheme.AddToScheme, cmscheme.AddToScheme, apiextensionsv1.AddToScheme, apiregistrationv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Logger: log,
		Cache: cache.Options{
			ReaderFailOnMissingInformer: true,
			DefaultNamespaces:           namespaces,
		},
		// As the binary: Secrets are read from the API server, not
		// cached; the reconcilers watch only their metadata.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		// controller-runtime refuses a second controller of the same
		// name in a process; two Starts in one test binary are fine.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
		// No leader election (one instance) and no metrics or health
		// endpoints, unlike the binary.
		LeaderElection:         false,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	// The binary waits up to five minutes for the Certificate CRD, since
	// it watches Certificates; do the same, bounded by the caller's context.
	direct, err := client.New(restConfig, client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(r.ctx, time.Second/4, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := direct.Get(ctx, client.ObjectKey{Name: "certificates.cert-manager.io"}, &apiextensionsv1.CustomResourceDefinition{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("waiting for the certificates.cert-manager.io CRD (InstallCRDs): %w", err)
	}

	if err := cainjector.RegisterAllInjectors(r.ctx, mgr, cainjector.SetupOptions{
		Namespace:                    opts.Namespace,
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.APIServiceName:                     false,
			cainjector.CustomResourceDefinitionName:       false,
		},
	}); err != nil {
		return fmt.Errorf("registering injectors: %w", err)
	}
	r.goRun("cainjector", mgr.Start)
	return nil
}
