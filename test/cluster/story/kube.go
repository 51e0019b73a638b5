package story

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"poolguard.dev/poolguard/test/cluster"
)

// waitFor polls cond until it holds, and returns cond's last error when
// timeout passes or ctx ends first.
func waitFor(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PausePod is a pause pod that goes quickly when deleted.
func PausePod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "pause", Image: cluster.PauseImage, ImagePullPolicy: corev1.PullNever}},
		},
	}
}

// PauseManifest is a pause pod's manifest, as a person writes one for
// kubectl or the kubelet's staticPodPath, with an optional annotation line.
func PauseManifest(ns, name, annotation string) []byte {
	meta := "  name: " + name + "\n  namespace: " + ns + "\n"
	if annotation != "" {
		meta += "  annotations:\n    " + annotation + "\n"
	}
	return []byte("apiVersion: v1\nkind: Pod\nmetadata:\n" + meta +
		"spec:\n  containers:\n  - name: pause\n    image: " + cluster.PauseImage + "\n    imagePullPolicy: Never\n")
}

// CreateDeployment creates a Deployment of n pause pods labelled app=name.
func CreateDeployment(ctx context.Context, cs kubernetes.Interface, ns, name string, n int32) error {
	pod := PausePod(ns, "")
	labels := map[string]string{"app": name}
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod.Spec},
		},
	}, metav1.CreateOptions{})
	return err
}

func (s *Story) rolledOut(ctx context.Context, ns, name string) (bool, error) {
	d, err := s.c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	want := *d.Spec.Replicas
	st := d.Status
	ok := st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want
	return ok, fmt.Errorf("%s/%s: %d updated, %d available, %d total of %d; pods: %s", ns, name, st.UpdatedReplicas, st.AvailableReplicas, st.Replicas, want, s.podSummary(ctx, ns))
}

func (s *Story) daemonSetRolledOut(ctx context.Context, name string) (bool, error) {
	d, err := s.c.Client.AppsV1().DaemonSets(ReleaseNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	st := d.Status
	ok := st.ObservedGeneration >= d.Generation && st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberAvailable == st.DesiredNumberScheduled && st.DesiredNumberScheduled > 0
	return ok, fmt.Errorf("daemonset %s: %d updated, %d available of %d", name, st.UpdatedNumberScheduled, st.NumberAvailable, st.DesiredNumberScheduled)
}

// podSummary says, for a failing wait, each pod's phase and why it waits.
func (s *Story) podSummary(ctx context.Context, ns string) string {
	pods, err := s.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b []string
	for _, p := range pods.Items {
		line := p.Name + " " + string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				line += " " + cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message
			}
		}
		for _, cond := range p.Status.Conditions {
			if cond.Status != corev1.ConditionTrue && cond.Message != "" {
				line += " (" + cond.Message + ")"
			}
		}
		b = append(b, line)
	}
	events, _ := s.c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	for _, e := range events.Items {
		if e.Type == corev1.EventTypeWarning {
			b = append(b, "event "+e.InvolvedObject.Name+": "+e.Reason+": "+e.Message)
		}
	}
	return strings.Join(b, "; ")
}

// listPods lists the pods of ns matching selector that are not being
// deleted.
func (s *Story) listPods(ctx context.Context, ns, selector string) ([]corev1.Pod, error) {
	pods, err := s.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyAfter is how long the pod took from creation to Ready, to the
// second (the resolution of the API's timestamps).
func readyAfter(p corev1.Pod) time.Duration {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Sub(p.CreationTimestamp.Time)
		}
	}
	return -1
}
