package cluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sweepChildEnv makes the test binary start a cluster and wait to be
// killed, for TestSweepAfterSIGKILL.
const sweepChildEnv = "POOLGUARD_SWEEP_CHILD"

// TestSweepChild is the killed process of TestSweepAfterSIGKILL; on its
// own it does nothing.
func TestSweepChild(t *testing.T) {
	if os.Getenv(sweepChildEnv) == "" {
		return
	}
	c, err := Start(Config{})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	// A running pod: a shim, a sandbox, mounts and cgroups to sweep.
	if err := runPausePod(c); err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("dir:", c.Dir)
	time.Sleep(10 * time.Minute)
}

// TestSweepAfterSIGKILL starts a cluster in another process, kills that
// process with SIGKILL (no cleanup runs), and checks that Sweep takes away
// everything the cluster had made and the machine is as before.
func TestSweepAfterSIGKILL(t *testing.T) {
	if os.Getenv(sweepChildEnv) != "" {
		return
	}
	before, err := snapshotMachine()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestSweepChild$", "-test.v")
	child.Env = append(os.Environ(), sweepChildEnv+"=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	dir := ""
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if d, ok := strings.CutPrefix(lines.Text(), "dir: "); ok {
			dir = d
			break
		}
		if strings.HasPrefix(lines.Text(), "error:") {
			_ = child.Process.Kill()
			t.Fatal(lines.Text())
		}
	}
	if dir == "" {
		_ = child.Process.Kill()
		t.Fatal("the child started no cluster")
	}
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()
	name := strings.TrimPrefix(dir, os.TempDir()+"/")
	// The components die with their parent (Pdeathsig), but the
	// cluster's shims, namespace, cgroups, mounts and directory stay.
	if _, err := os.Stat("/var/run/netns/" + name); err != nil {
		t.Errorf("the killed cluster left no network namespace: the test proves nothing")
	}
	if len(leftoverProcesses(dir)) == 0 {
		t.Errorf("the pod's shim did not survive its cluster's owner: the test proves nothing")
	}
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	var left []string
	left = append(left, leftoverProcesses(dir)...)
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	now, err := snapshotMachine()
	if err != nil {
		t.Fatal(err)
	}
	mine := (&Cluster{Name: name}).mine
	left = append(left, before.diff(now, mine)...)
	if len(left) > 0 {
		t.Errorf("Sweep left: %v", left)
	}
}

// runPausePod runs a pause pod to Running once the default service
// account exists.
func runPausePod(c *Cluster) error {
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stays", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "pause", Image: PauseImage, ImagePullPolicy: corev1.PullNever}}},
	}
	return poll("pod stays Running", 2*time.Minute, func() (bool, error) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
			return false, err
		}
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s", p.Status.Phase)
	})
}
