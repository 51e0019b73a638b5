package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
)

func TestAllowedNamesNeedClientCA(t *testing.T) {
	if _, err := (callerAuth{allowedNames: "kube-apiserver"}).webhookTLSOpts(funcr.New(func(string, string) {}, funcr.Options{})); !errors.Is(err, errFlagUsage) {
		t.Fatalf("--client-allowed-names without --client-ca-file: %v, want errFlagUsage", err)
	}
	if opts, err := (callerAuth{}).webhookTLSOpts(funcr.New(func(string, string) {}, funcr.Options{})); err != nil || opts != nil {
		t.Fatalf("no client auth: %v %v, want no TLS options", opts, err)
	}
}

// TestStdLogLevels: a handshake without a client certificate (every
// readiness probe under client auth) is debug; a refused certificate is not.
func TestStdLogLevels(t *testing.T) {
	var lines []string
	w := stdLogWriter{log: funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})}
	fmt.Fprintln(w, "http: TLS handshake error from 127.0.0.1:1: tls: client didn't provide a certificate")
	fmt.Fprintln(w, "http: TLS handshake error from 127.0.0.1:2: tls: failed to verify certificate: x509: certificate signed by unknown authority")
	if len(lines) != 1 || !strings.Contains(lines[0], "unknown authority") {
		t.Fatalf("logged at the default level: %q; want only the refused certificate", lines)
	}
}
