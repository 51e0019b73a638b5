package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ServiceConfig describes a process to run in a network namespace of its
// own, as a pod would run: it may bind the fixed ports its manifest says
// without meeting anything else on the machine.
type ServiceConfig struct {
	// Netns is the namespace's name; it must carry the caller's prefix.
	Netns string
	// APIServer (host:port on the root namespace's loopback) is forwarded
	// to the same address inside the namespace, so the process's
	// kubeconfig works unchanged.
	APIServer string
	// Expose maps a root-namespace address to a port inside, e.g. where
	// the API server calls a webhook to the port the webhook binds.
	Expose map[string]int
	// Command and Env run the process.
	Command []string
	Env     []string
}

// Service is a running process in its namespace.
type Service struct {
	cfg  ServiceConfig
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  SyncBuffer
	fwds []*forwarder
	// stopMu serializes Stop between a test's cleanup and a signal.
	stopMu sync.Mutex
}

// running are the services started and not yet stopped, for StopServices.
var running sync.Map // *Service -> struct{}

// StopServices stops every service still running: the last resort of a
// signal handler that may interrupt its caller before it holds a Service.
func StopServices() error {
	var errs []error
	running.Range(func(k, _ any) bool {
		errs = append(errs, k.(*Service).Stop())
		return true
	})
	return errors.Join(errs...)
}

// StartService creates the namespace, the forwarders and the process.
// Stop it on every path.
func StartService(cfg ServiceConfig) (s *Service, err error) {
	s = &Service{cfg: cfg, done: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
			s = nil
		}
	}()
	if _, err := ip("netns", "add", cfg.Netns); err != nil {
		return s, err
	}
	if _, err := ip("-n", cfg.Netns, "link", "set", "lo", "up"); err != nil {
		return s, err
	}
	f, err := forward(cfg.Netns, cfg.APIServer, "", cfg.APIServer)
	if err != nil {
		return s, err
	}
	s.fwds = append(s.fwds, f)
	for outside, port := range cfg.Expose {
		f, err := forward("", outside, cfg.Netns, fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return s, err
		}
		s.fwds = append(s.fwds, f)
	}
	// ip netns exec execs the command, so the process is the service.
	s.cmd = exec.Command("ip", append([]string{"netns", "exec", cfg.Netns}, cfg.Command...)...)
	s.cmd.Env = cfg.Env
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	// Its own process group: a Ctrl-C meant for us reaches it only
	// through Stop, after which the namespace goes.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return s, err
	}
	running.Store(s, struct{}{})
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	return s, nil
}

// WaitHTTP waits until GET url, made inside the namespace, answers 200,
// or the process exits, or the deadline passes.
func (s *Service) WaitHTTP(url string, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) { return dialIn(s.cfg.Netns, addr) },
	}}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%v exited: %w\n%s", s.cfg.Command, s.err, s.Log())
		default:
		}
		if resp, err := c.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s:\n%s", url, timeout, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log is what the process wrote so far.
func (s *Service) Log() string { return s.log.String() }

// Stop ends the process (SIGTERM, as the kubelet would, then SIGKILL),
// the forwarders and the namespace. Safe to call twice.
func (s *Service) Stop() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	running.Delete(s)
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(15 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
	}
	for _, f := range s.fwds {
		f.close()
	}
	s.fwds = nil
	return delNetns(s.cfg.Netns)
}

// SyncBuffer is a bytes.Buffer safe for a process's two output streams.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
