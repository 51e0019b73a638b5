package certrotator

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// TestWebhookServerReloads: the files a renewal writes are picked up by
// controller-runtime's certificate watcher, which the webhook server uses,
// without a restart.
func TestWebhookServerReloads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, clk := setup(t)
	dir := t.TempDir()
	r := rotator(c, clk, dir)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := certwatcher.New(filepath.Join(dir, KeyCert), filepath.Join(dir, KeyKey))
	if err != nil {
		t.Fatalf("the webhook server could not load the rotator's files: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	served := func() *x509.Certificate {
		cert, err := w.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	first := served()
	time.Sleep(500 * time.Millisecond) // let the watcher add its watches

	clk.add(25 * 24 * time.Hour) // serving certificate due
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for served().Equal(first) {
		if time.Since(start) > 15*time.Second {
			t.Fatal("renewed certificate not served 15s after the rotator wrote it")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("renewed certificate served %v after it was written", time.Since(start).Round(time.Millisecond))
}
