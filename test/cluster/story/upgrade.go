package story

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/test/harness"
)

func (s *Story) upgrade(ctx context.Context) error {
	before, err := s.listPods(ctx, ReleaseNS, "")
	if err != nil {
		return err
	}
	creates := s.createEvery(ctx, 250*time.Millisecond)
	up := s.rel
	up.Set = []string{"image.pullPolicy=Never"}
	s.say("$ helm upgrade %s charts/poolguard --namespace %s --reuse-values --set image.pullPolicy=Never", up.Name, up.Namespace)
	out, err := s.helm.Install(up, true, "--reuse-values")
	if err != nil {
		creates.stop()
		return fmt.Errorf("helm upgrade: %w\n%s", err, out)
	}
	s.say("%s", indent(firstLines(string(out), 6)))
	err = waitFor(ctx, "the upgrade rolled out", 5*time.Minute, func() (bool, error) {
		after, err := s.listPods(ctx, ReleaseNS, "")
		if err != nil {
			return false, err
		}
		for _, p := range after {
			for _, b := range before {
				if p.Name == b.Name {
					return false, fmt.Errorf("pod %s not replaced yet", p.Name)
				}
			}
		}
		if ok, err := s.rolledOut(ctx, ReleaseNS, Release+"-webhook"); !ok {
			return false, err
		}
		return s.daemonSetRolledOut(ctx, Release+"-cni")
	})
	if err == nil {
		// Keep creating until the old replicas have stopped: a replica
		// that stops serving before the API server stops calling it is
		// what fails creations.
		err = waitFor(ctx, "the old pods gone", 2*time.Minute, func() (bool, error) {
			for _, b := range before {
				if _, err := s.c.Client.CoreV1().Pods(ReleaseNS).Get(ctx, b.Name, metav1.GetOptions{}); err == nil {
					return false, fmt.Errorf("pod %s still terminating", b.Name)
				}
			}
			return true, nil
		})
	}
	created, failures := creates.stop()
	if err != nil {
		return err
	}
	s.logf("pods created during the upgrade: %d, failed: %d", created, len(failures))
	if len(failures) > 0 {
		return fmt.Errorf("%d pod creates failed during the upgrade: %v", len(failures), failures)
	}
	if created < 5 {
		return fmt.Errorf("only %d pods created during the upgrade: the step proves nothing", created)
	}
	s.show("-n", ReleaseNS, "get", "pods", "-o", "wide")
	return nil
}

// creator creates a pod in shop at an interval until stopped.
type creator struct {
	stopc    chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	created  int
	failures []string
}

func (s *Story) createEvery(ctx context.Context, every time.Duration) *creator {
	c := &creator{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for i := 0; ; i++ {
			select {
			case <-c.stopc:
				return
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
			_, err := s.c.Client.CoreV1().Pods("shop").Create(ctx, PausePod("shop", fmt.Sprintf("during-upgrade-%d", i)), metav1.CreateOptions{})
			c.mu.Lock()
			if err != nil {
				c.failures = append(c.failures, err.Error())
			} else {
				c.created++
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// stop ends the creations and says how many succeeded and why others
// failed.
func (c *creator) stop() (created int, failures []string) {
	close(c.stopc)
	<-c.done
	return c.created, c.failures
}

func (s *Story) uninstall(ctx context.Context) error {
	s.say("$ helm uninstall %s --namespace %s --wait", Release, ReleaseNS)
	if out, err := s.helm.Run(nil, "uninstall", Release, "--namespace", ReleaseNS, "--wait"); err != nil {
		return fmt.Errorf("helm uninstall: %w\n%s", err, out)
	}
	// The release's objects go at once; their dependents (pods,
	// ReplicaSets) as the garbage collector and the kubelet get to them.
	start := time.Now()
	if err := waitFor(ctx, "nothing of the release left", 2*time.Minute, func() (bool, error) {
		left, err := s.leftObjects()
		return err == nil && len(left) == 0, fmt.Errorf("left behind by helm uninstall: %v %v", left, err)
	}); err != nil {
		return err
	}
	s.logf("helm uninstall: everything of the release gone in %s", time.Since(start).Round(time.Millisecond))
	s.show("get", "ippools.ipam.poolguard.dev")
	return nil
}

// leftObjects lists what of the release is still in the API: every object
// labelled with its instance, in every namespaced and cluster-scoped
// resource the API server serves.
func (s *Story) leftObjects() ([]string, error) {
	resources, err := s.allResources()
	if err != nil {
		return nil, err
	}
	out, err := s.c.InNode(filepath.Join(harness.BinDir(), "kubectl"), "--kubeconfig", s.c.AdminKubeconfig(),
		"get", resources, "--all-namespaces", "-l", "app.kubernetes.io/instance="+Release, "-o", "name", "--ignore-not-found")
	if err != nil {
		return nil, err
	}
	var left []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		// The pools outlive the release (README): a pool with
		// allocations must not vanish with the chart.
		if l != "" && !strings.HasPrefix(l, "ippool.ipam.poolguard.dev/") {
			left = append(left, l)
		}
	}
	return left, nil
}

// allResources is every listable resource, comma-separated, for kubectl get.
func (s *Story) allResources() (string, error) {
	out, err := s.c.InNode(filepath.Join(harness.BinDir(), "kubectl"), "--kubeconfig", s.c.AdminKubeconfig(), "api-resources", "--verbs=list", "-o", "name")
	if err != nil {
		return "", err
	}
	var rs []string
	for _, r := range strings.Fields(out) {
		// Events and leases are written by components about the release,
		// not by it.
		if r != "events" && r != "events.events.k8s.io" && r != "leases.coordination.k8s.io" {
			rs = append(rs, r)
		}
	}
	return strings.Join(rs, ","), nil
}
