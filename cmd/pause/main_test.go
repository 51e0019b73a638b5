package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExitsZeroOnSignal builds the pause binary as the image does (static)
// and checks it runs until signalled and then exits 0, for both signals a
// runtime sends to stop a container.
func TestExitsZeroOnSignal(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pause")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ready := make(chan string, 1)
			done := make(chan struct{})
			var waitErr error
			go func() {
				defer close(done)
				lines := bufio.NewScanner(stderr)
				if lines.Scan() {
					ready <- lines.Text()
				}
				close(ready)
				for lines.Scan() {
				}
				waitErr = cmd.Wait()
			}()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
			})

			// The readiness line is printed after the handler is
			// installed: before it, a signal would kill the process.
			if line := <-ready; !strings.Contains(line, "waiting") {
				t.Fatalf("no readiness line, got %q", line)
			}
			select {
			case <-done:
				t.Fatalf("exited before any signal: %v", waitErr)
			default:
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("still running 10s after %v", sig)
			}
			var ee *exec.ExitError
			if errors.As(waitErr, &ee) {
				t.Fatalf("after %v: %v, want exit status 0", sig, ee)
			}
			if waitErr != nil {
				t.Fatalf("wait: %v", waitErr)
			}
		})
	}
}
