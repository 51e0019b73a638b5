package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"strings"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"poolguard.dev/poolguard/webhook/clientauth"
)

// callerAuth are the flags that say who may call the webhook.
type callerAuth struct {
	// clientCAFile, when set, makes the webhook require client certificates
	// signed by these CAs: the API server's, see package clientauth.
	clientCAFile string
	// allowedNames is the comma-separated --client-allowed-names.
	allowedNames string
}

// webhookTLSOpts returns the webhook server's TLS options: none without
// --client-ca-file (any caller that reaches the port is answered).
func (a callerAuth) webhookTLSOpts(log logr.Logger) ([]func(*tls.Config), error) {
	names := clientauth.ParseNames(a.allowedNames)
	if a.clientCAFile == "" {
		if len(names) > 0 {
			return nil, fmt.Errorf("--client-allowed-names needs --client-ca-file: %w", errFlagUsage)
		}
		return nil, nil
	}
	opt, err := clientauth.Config{CAFile: a.clientCAFile, AllowedNames: names, Log: log}.TLSOption()
	if err != nil {
		return nil, err
	}
	return []func(*tls.Config){opt}, nil
}

// metricsOptions serves metrics over HTTPS to callers the API server
// authenticates (TokenReview) and authorizes (SubjectAccessReview for get
// on the non-resource URL /metrics), with the webhook's own serving
// certificate from certDir, reloaded on rotation, so that a scraper can
// verify it against the webhook's CA and the Service's DNS name. Insecure:
// plain HTTP to anyone, as before.
//
// A scraper needs a ClusterRole granting get on nonResourceURLs
// ["/metrics"] (the chart's <release>-metrics-reader); the webhook's own
// service account needs create on tokenreviews and subjectaccessreviews.
// Reviews are cached (allowed 5m, denied 30s, tokens 1m), so a scrape
// interval costs no API call per scrape.
func metricsOptions(addr, certDir string, secure bool) metricsserver.Options {
	if !secure {
		return metricsserver.Options{BindAddress: addr}
	}
	return metricsserver.Options{
		BindAddress:    addr,
		SecureServing:  true,
		CertDir:        certDir,
		FilterProvider: filters.WithAuthenticationAndAuthorization,
	}
}

// errFlagUsage marks a combination of flags that makes no sense.
var errFlagUsage = errors.New("invalid flags")

// stdLogWriter carries the standard library's logger, through which
// net/http reports failed TLS handshakes, into logr. With client
// authentication every readiness probe (controller-runtime dials the
// webhook port without a client certificate to see that it serves) and
// every port scan is a handshake without a certificate: those go to V(1),
// so they do not flood the log. A certificate the webhook refuses (another
// CA, a name not allowed) stays at the default level: someone tried.
type stdLogWriter struct{ log logr.Logger }

func (w stdLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") && strings.Contains(msg, "didn't provide a certificate") {
		w.log.V(1).Info(msg)
	} else {
		w.log.Info(msg)
	}
	return len(p), nil
}

// routeStdLog sends the standard library's logger to log (see
// stdLogWriter).
func routeStdLog(log logr.Logger) {
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdLogWriter{log: log})
}
