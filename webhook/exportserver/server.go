package exportserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	kubestorev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/pools/source"
	"poolguard.dev/poolguard/webhook"
	"poolguard.dev/poolguard/webhook/clientauth"
)

// DefaultBindAddress is where the export listens unless told.
const DefaultBindAddress = ":8444"

// Server serves a handler over HTTPS with the certificate in CertDir
// (tls.crt, tls.key), reloaded when it is rotated, as the webhook and
// metrics servers do. It runs on every replica, not only the leader.
type Server struct {
	// Addr is the address to listen on (host:port).
	Addr string
	// CertDir holds tls.crt and tls.key.
	CertDir string
	// TLSOpts adjust the TLS configuration (client certificates).
	TLSOpts []func(*tls.Config)
	Handler http.Handler
	Log     logr.Logger
}

// NeedLeaderElection: every replica serves the export.
func (*Server) NeedLeaderElection() bool { return false }

// Start serves until ctx is done.
func (s *Server) Start(ctx context.Context) error {
	cw, err := certwatcher.New(filepath.Join(s.CertDir, "tls.crt"), filepath.Join(s.CertDir, "tls.key"))
	if err != nil {
		return fmt.Errorf("export server certificate: %w", err)
	}
	go func() {
		if err := cw.Start(ctx); err != nil {
			s.Log.Error(err, "export server: certificate watcher stopped")
		}
	}()
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cw.GetCertificate,
		// HTTP/1.1 only, as controller-runtime's servers default to
		// (HTTP/2 rapid reset, CVE-2023-44487); firewalls poll with 1.1.
		NextProtos: []string{"http/1.1"},
	}
	for _, opt := range s.TLSOpts {
		opt(cfg)
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("export server: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	s.Log.Info("serving the live export", "address", ln.Addr().String())
	err = srv.Serve(tls.NewListener(ln, cfg))
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}

// Options configure the export.
type Options struct {
	// BindAddress is where to listen; "0" or empty: no export.
	BindAddress string
	// CertDir holds the serving certificate (the webhook's).
	CertDir string
	// ClientCAFile, when set, lets callers authenticate with a client
	// certificate signed by it (re-read when the file changes); callers
	// without one still may with a bearer token.
	ClientCAFile string
	// Mode is the webhook's mode: in Calico mode the pools are Calico's
	// and the addresses are not known.
	Mode webhook.Mode
	// Addresses: native mode with poolguard's allocator allocating, so
	// IPAMClaims record the addresses in use. False: the address lists
	// answer 501.
	Addresses bool
	// ReaderRole names the ClusterRole that grants the lists, for the 403
	// message.
	ReaderRole string
}

// Setup adds the export server to the manager (on every replica), with
// the informers it reads started and synced with the manager's cache.
func Setup(mgr manager.Manager, o Options) error {
	if o.BindAddress == "" || o.BindAddress == "0" {
		return nil
	}
	log := mgr.GetLogger().WithName("export")
	ctx := context.Background()
	pools, err := poolSource(ctx, mgr, o.Mode)
	if err != nil {
		return err
	}
	reader := Cached{PoolSource: pools}
	switch {
	case o.Mode == webhook.ModeCalico:
		reader.Unknown = "in Calico mode Calico's IPAM allocates and poolguard records no allocations; only the pool CIDRs (/v1/pools) are exported. The address lists need native mode"
	case !o.Addresses:
		reader.Unknown = "poolguard's allocator is not enabled here (another IPAM allocates); only the pool CIDRs (/v1/pools) are exported"
	default:
		if err := kubestorev1alpha1.AddToScheme(mgr.GetScheme()); err != nil {
			return err
		}
		for _, f := range []string{NamespaceField, PoolField} {
			if err := mgr.GetFieldIndexer().IndexField(ctx, &kubestorev1alpha1.IPAMClaim{}, f, IndexClaim(f)); err != nil {
				return fmt.Errorf("indexing IPAMClaims by %s: %w", f, err)
			}
		}
		if _, err := mgr.GetCache().GetInformer(ctx, &kubestorev1alpha1.IPAMClaim{}); err != nil {
			return fmt.Errorf("IPAMClaim informer: %w", err)
		}
		reader.Claims = mgr.GetCache()
	}
	authn, authz, err := Delegated(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return err
	}
	var tlsOpts []func(*tls.Config)
	if o.ClientCAFile != "" {
		opt, err := clientauth.Config{CAFile: o.ClientCAFile, Optional: true, Log: log.WithName("clientauth")}.TLSOption()
		if err != nil {
			return fmt.Errorf("--export-client-ca-file: %w", err)
		}
		tlsOpts = append(tlsOpts, opt)
	}
	return mgr.Add(&Server{
		Addr:    o.BindAddress,
		CertDir: o.CertDir,
		TLSOpts: tlsOpts,
		Handler: &Handler{Reader: reader, Authenticator: authn, Authorizer: authz, ReaderRole: o.ReaderRole, Log: log},
		Log:     log,
	})
}

// poolSource serves the mode's IPPools as admission reads them, from the
// same informer (the manager's cache shares it).
func poolSource(ctx context.Context, mgr manager.Manager, mode webhook.Mode) (source.Source, error) {
	src, _, err := source.FromManager(ctx, mgr, mode == webhook.ModeCalico)
	return src, err
}
