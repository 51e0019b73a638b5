package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"poolguard.dev/poolguard/test/cluster"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/cluster runs containerd and a kubelet and must run as root (sudo make test-cluster); failing rather than skipping")
		os.Exit(1)
	}
	// cert-manager's CA injector (TestHelmInstallOnNode) logs through
	// controller-runtime's global logger; failures show in the steps.
	ctrllog.SetLogger(logr.Discard())
	// Clusters of a test process that was killed (SIGKILL, a CI
	// timeout) cannot have cleaned up after themselves.
	if err := cluster.Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "cluster: %s: stopping the cluster and cleaning the machine\n", s)
		if err := cluster.CloseAll(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}()
	os.Exit(m.Run())
}

// startCluster starts a cluster for t, and on cleanup closes it and
// asserts that the machine is as it was.
func startCluster(t *testing.T, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	cfg.Logf = t.Logf
	start := time.Now()
	c, err := cluster.Start(cfg)
	if err != nil {
		t.Fatalf("starting the cluster: %v", err)
	}
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))
	// The check after Close means something only if it sees a running
	// cluster.
	if err := c.Leftovers(); err == nil {
		t.Errorf("Leftovers finds nothing of a running cluster")
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Logs(40))
		}
		start := time.Now()
		if err := c.Close(); err != nil {
			t.Errorf("closing the cluster: %v", err)
		}
		t.Logf("cluster torn down in %s", time.Since(start).Round(time.Millisecond))
		if err := c.Leftovers(); err != nil {
			t.Errorf("the machine is not as the cluster found it: %v", err)
		}
	})
	// The ServiceAccount admission plugin refuses pods until the
	// controller manager has made the namespace's default account.
	waitFor(t, "the default service account", time.Minute, func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, err
	})
	return c
}

// TestSingleNodeCluster starts the real node, runs a pod to Running with
// an address from the bridge plugin and host-local, deletes it, and checks
// that the address is released and (on cleanup) that the machine is clean.
func TestSingleNodeCluster(t *testing.T) {
	c := startCluster(t, cluster.Config{})
	runPod(t, c, "first", cluster.DefaultPodRange, func(ip netip.Addr) (bool, error) {
		held, err := c.HostLocalAllocated()
		for _, h := range held {
			if h == ip.String() {
				return true, err
			}
		}
		return false, fmt.Errorf("host-local holds %v, not %s", held, ip)
	})
	// A pod still running at teardown: its sandbox, mounts and cgroups
	// must go too, without the kubelet's orderly CNI DEL.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startPod(ctx, t, c, "left-running")
}

// runPod creates a pause pod, waits until it runs with an address inside
// want that held reports allocated, deletes it, and waits until held
// reports the address free.
func runPod(t *testing.T, c *cluster.Cluster, name string, want netip.Prefix, held func(netip.Addr) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pods := c.Client.CoreV1().Pods("default")
	running := startPod(ctx, t, c, name)
	if running.Spec.NodeName != c.NodeName {
		t.Errorf("pod %s scheduled to %q, want %q", name, running.Spec.NodeName, c.NodeName)
	}
	ip, err := netip.ParseAddr(running.Status.PodIP)
	if err != nil {
		t.Fatalf("pod %s IP %q: %v", name, running.Status.PodIP, err)
	}
	if !want.Contains(ip) {
		t.Errorf("pod %s IP %s is outside %s", name, ip, want)
	}
	if ok, err := held(ip); !ok {
		t.Errorf("pod %s's address %s is not recorded as allocated: %v", name, ip, err)
	}
	t.Logf("pod %s runs on %s with address %s", name, running.Spec.NodeName, ip)

	if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting pod %s: %v", name, err)
	}
	waitFor(t, "pod "+name+" gone", time.Minute, func() (bool, error) {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	// The kubelet tears the sandbox down (CNI DEL) as the pod goes.
	waitFor(t, "pod "+name+"'s address "+ip.String()+" released", time.Minute, func() (bool, error) {
		ok, err := held(ip)
		if err != nil && ok {
			return false, err
		}
		return !ok, fmt.Errorf("still allocated")
	})
}

// startPod creates a pause pod in the default namespace and waits until it
// is Running.
func startPod(ctx context.Context, t *testing.T, c *cluster.Cluster, name string) *corev1.Pod {
	t.Helper()
	pods := c.Client.CoreV1().Pods("default")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "pause", Image: cluster.PauseImage, ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
	created := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	var running *corev1.Pod
	waitFor(t, "pod "+name+" Running", 2*time.Minute, func() (bool, error) {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.Phase == corev1.PodFailed {
			t.Fatalf("pod %s failed: %s", name, p.Status.Message)
		}
		running = p
		return p.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s, conditions %v", p.Status.Phase, p.Status.Conditions)
	})
	t.Logf("pod %s: create to Running in %s", name, time.Since(created).Round(time.Millisecond))
	return running
}

// waitFor polls cond until it holds, failing t with cond's last error when
// timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
