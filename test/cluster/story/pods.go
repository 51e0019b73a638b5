package story

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	allocv1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/netlab"
)

func (s *Story) deployments(ctx context.Context) error {
	if _, err := s.kubectl("create", "namespace", "payments"); err != nil {
		return err
	}
	if _, err := s.kubectl("annotate", "namespace", "payments", policy.AnnotationIPv4Pools+`=["trusted"]`); err != nil {
		return err
	}
	if _, err := s.kubectl("create", "namespace", "shop"); err != nil {
		return err
	}
	if err := waitFor(ctx, "default service accounts", time.Minute, func() (bool, error) {
		for _, ns := range []string{"payments", "shop"} {
			if _, err := s.c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return false, err
			}
		}
		return true, nil
	}); err != nil {
		return err
	}
	start := time.Now()
	if _, err := s.kubectl("-n", "payments", "create", "deployment", "api", "--image="+cluster.PauseImage, fmt.Sprintf("--replicas=%d", Replicas)); err != nil {
		return err
	}
	if err := waitFor(ctx, "payments/api available", 3*time.Minute, func() (bool, error) { return s.rolledOut(ctx, "payments", "api") }); err != nil {
		return err
	}
	s.logf("Deployment of %d replicas: create to all Running in %s", Replicas, time.Since(start).Round(time.Millisecond))
	pods, err := s.listPods(ctx, "payments", "app=api")
	if err != nil {
		return err
	}
	var errs []error
	var toReady []time.Duration
	for _, p := range pods {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !Trusted.Contains(ip) {
			errs = append(errs, fmt.Errorf("pod %s has %q, outside the trusted pool %s", p.Name, p.Status.PodIP, Trusted))
		}
		if p.Annotations[policy.AnnotationIPv4Pools] != `["trusted"]` || p.Annotations[policy.AnnotationProvenance] == "" {
			errs = append(errs, fmt.Errorf("pod %s not frozen: %v", p.Name, p.Annotations))
		}
		toReady = append(toReady, readyAfter(p))
	}
	if len(pods) != Replicas {
		errs = append(errs, fmt.Errorf("%d payments pods, want %d", len(pods), Replicas))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	slices.Sort(toReady)
	s.logf("pod create to Ready (%d pods, whole seconds): p50 %s, max %s", len(toReady), toReady[len(toReady)/2], toReady[len(toReady)-1])
	s.logf("cluster memory with poolguard and %d pods: %d MiB resident (every component, shim and pod process)", Replicas, s.c.MemoryRSS()>>20)
	s.paymentsPods = pods
	s.show("-n", "payments", "get", "pods", "-o", "custom-columns=POD:.metadata.name,IP:.status.podIP,POOLS:.metadata.annotations.cni\\.projectcalico\\.org/ipv4pools", "--sort-by=.status.podIP")

	if _, err := s.kubectl("-n", "shop", "create", "deployment", "web", "--image="+cluster.PauseImage, "--replicas=2"); err != nil {
		return err
	}
	if err := waitFor(ctx, "shop/web available", 3*time.Minute, func() (bool, error) { return s.rolledOut(ctx, "shop", "web") }); err != nil {
		return err
	}
	if s.shopPods, err = s.listPods(ctx, "shop", "app=web"); err != nil {
		return err
	}
	for _, p := range s.shopPods {
		if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !General.Contains(ip) {
			return fmt.Errorf("shop pod %s has %q, outside the Automatic pool %s", p.Name, p.Status.PodIP, General)
		}
	}
	s.show("-n", "shop", "get", "pods", "-o", "wide")
	return nil
}

func (s *Story) firewall(context.Context) error {
	fw, err := s.c.StartFirewall(Trusted)
	if err != nil {
		return err
	}
	s.fw = fw // the export's firewall, later, is this one with other rules
	p := s.paymentsPods[0]
	ip := netip.MustParseAddr(p.Status.PodIP)
	ns, err := s.c.PodNetns(ip)
	if err != nil {
		return err
	}
	seen, err := netlab.Connect(ns, fw.Addr)
	if err != nil || seen != ip {
		return fmt.Errorf("payments pod %s (%s): firewall saw %s, %v; want its own address accepted", p.Name, ip, seen, err)
	}
	s.say("payments pod %s (%s) connects to the firewall's listener %s: accepted, the firewall sees %s", p.Name, ip, fw.Addr, seen)
	sp := s.shopPods[0]
	ip = netip.MustParseAddr(sp.Status.PodIP)
	if ns, err = s.c.PodNetns(ip); err != nil {
		return err
	}
	_, err = netlab.Connect(ns, fw.Addr)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		return fmt.Errorf("shop pod %s (%s) reached the firewall: %v", sp.Name, ip, err)
	}
	s.say("shop pod %s (%s) connects to %s: %v", sp.Name, ip, fw.Addr, err)
	return nil
}

func (s *Story) forbiddenPool(context.Context) error {
	manifest := filepath.Join(s.c.Dir, "sneaky-pod.yaml")
	if err := os.WriteFile(manifest, PauseManifest("shop", "sneaky", `cni.projectcalico.org/ipv4pools: '["trusted"]'`), 0o644); err != nil {
		return err
	}
	s.say("$ cat sneaky-pod.yaml\n%s", indent(string(PauseManifest("shop", "sneaky", `cni.projectcalico.org/ipv4pools: '["trusted"]'`))))
	_, err := s.kubectl("apply", "-f", manifest)
	if err == nil || !strings.Contains(err.Error(), "trusted") {
		return fmt.Errorf("kubectl apply of a shop pod naming the trusted pool: %v, want refused naming the pool", err)
	}
	return nil
}

func (s *Story) lateAnnotate(context.Context) error {
	_, err := s.kubectl("-n", "shop", "annotate", "--overwrite", "pod", s.shopPods[0].Name, policy.AnnotationIPv4Pools+`=["trusted"]`)
	if err == nil || !strings.Contains(err.Error(), "delete") {
		return fmt.Errorf("late kubectl annotate: %v, want refused with the way out (delete and create again)", err)
	}
	return nil
}

func (s *Story) recreatedSandbox(ctx context.Context) error {
	if _, err := s.kubectl("annotate", "--overwrite", "namespace", "payments", policy.AnnotationIPv4Pools+`=["general"]`); err != nil {
		return err
	}
	p := s.paymentsPods[1]
	ip := netip.MustParseAddr(p.Status.PodIP)
	s.say("# kill pod %s's sandbox (its pause task, SIGKILL through containerd)", p.Name)
	if err := s.c.KillSandbox("payments", p.Name); err != nil {
		return err
	}
	var now *corev1.Pod
	if err := waitFor(ctx, "pod "+p.Name+" back with a new sandbox", 2*time.Minute, func() (bool, error) {
		var err error
		if now, err = s.c.Client.CoreV1().Pods("payments").Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
			return false, err
		}
		restarted := len(now.Status.ContainerStatuses) > 0 && now.Status.ContainerStatuses[0].RestartCount > 0
		return restarted && isReady(now) && now.Status.PodIP != "", fmt.Errorf("restarted %v, ready %v, IP %q", restarted, isReady(now), now.Status.PodIP)
	}); err != nil {
		return err
	}
	got, err := netip.ParseAddr(now.Status.PodIP)
	if err != nil || !Trusted.Contains(got) {
		return fmt.Errorf("after its sandbox was recreated, pod %s has %q, outside its frozen pool %s", p.Name, now.Status.PodIP, Trusted)
	}
	s.logf("pod %s: %s, then %s after its sandbox was killed", p.Name, ip, got)
	s.show("-n", "payments", "get", "pod", p.Name, "-o", "wide")
	return nil
}

func (s *Story) release(ctx context.Context) error {
	if _, err := s.kubectl("-n", "payments", "delete", "deployment", "api"); err != nil {
		return err
	}
	return waitFor(ctx, "payments' claims released", 2*time.Minute, func() (bool, error) {
		var claims allocv1alpha1.IPAMClaimList
		if err := s.cl.List(ctx, &claims); err != nil {
			return false, err
		}
		left := 0
		for _, cm := range claims.Items {
			if cm.Spec.Pod.Namespace == "payments" {
				left++
			}
		}
		return left == 0, fmt.Errorf("%d claims of payments pods left; pods: %s", left, s.podSummary(ctx, "payments"))
	})
}

func (s *Story) staticPod(ctx context.Context) error {
	manifest := filepath.Join(s.c.StaticPodDir, "static-web.yaml")
	if err := os.WriteFile(manifest, PauseManifest("shop", "static-web", ""), 0o644); err != nil {
		return err
	}
	s.say("# static-web.yaml written to the kubelet's staticPodPath")
	mirror := "static-web-" + s.c.NodeName
	var p *corev1.Pod
	if err := waitFor(ctx, "the static pod's mirror Running with an address", 2*time.Minute, func() (bool, error) {
		var err error
		if p, err = s.c.Client.CoreV1().Pods("shop").Get(ctx, mirror, metav1.GetOptions{}); err != nil {
			return false, err
		}
		return isReady(p) && p.Status.PodIP != "", fmt.Errorf("ready %v, IP %q; %s", isReady(p), p.Status.PodIP, s.podSummary(ctx, "shop"))
	}); err != nil {
		return err
	}
	ip := netip.MustParseAddr(p.Status.PodIP)
	if ok, err := s.claimed(ctx, *p, "general"); !General.Contains(ip) || p.Annotations[policy.AnnotationMirrorPod] == "" || !ok {
		return fmt.Errorf("static pod %s: %s, mirror of %q, claimed %v (%v)", mirror, ip, p.Annotations[policy.AnnotationMirrorPod], ok, err)
	}
	s.say("mirror pod %s (static UID %s) has %s; watching it for three grace periods", mirror, p.Annotations[policy.AnnotationMirrorPod], ip)
	// The collector sweeps every gcInterval and frees what looks orphaned
	// for gcGrace: three grace periods give it every chance to err.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * gcGrace):
	}
	now, err := s.c.Client.CoreV1().Pods("shop").Get(ctx, mirror, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if ok, err := s.claimed(ctx, *now, "general"); now.Status.PodIP != ip.String() || !isReady(now) || !ok {
		return fmt.Errorf("after the grace period the static pod has %q (ready %v), claimed %v (%v); want %s kept", now.Status.PodIP, isReady(now), ok, err, ip)
	}
	s.show("-n", "shop", "get", "pod", mirror, "-o", "wide")
	return os.Remove(manifest)
}

// claimed reports whether an IPAMClaim of pool holds the pod's address.
func (s *Story) claimed(ctx context.Context, p corev1.Pod, pool string) (bool, error) {
	var claims allocv1alpha1.IPAMClaimList
	if err := s.cl.List(ctx, &claims); err != nil {
		return false, err
	}
	for _, cm := range claims.Items {
		for _, a := range cm.Spec.Addresses {
			if cm.Spec.Pod.Namespace == p.Namespace && cm.Spec.Pod.Name == p.Name && a.Pool == pool && a.Address == p.Status.PodIP {
				return true, nil
			}
		}
	}
	return false, nil
}
