package poolctl_test

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"poolguard.dev/poolguard/cmd/kubectl-poolguard/poolctl"
	"poolguard.dev/poolguard/policy"
)

// world is a large cluster as drift sees it, for the benchmarks: the
// shape of test/scale (team pools restricted to their namespaces by
// label, one Automatic IPv6 pool, namespace defaults of either family or
// both, every fourth pod naming its pools itself), with what a running
// pod has besides (a node, addresses from its pools), a few hostNetwork
// and finished pods, and a few whose namespace's default moved.
type world struct {
	rules      policy.Rules
	pools      []policy.Pool
	index      *policy.Index
	namespaces map[string]policy.Namespace
	nsList     []policy.Namespace
	pods       []poolctl.Pod
	// next is the last address handed out in each pool.
	next map[string]netip.Addr
}

const (
	worldTeamLabel  = "bench.poolguard.dev/team"
	worldTeam6Label = "bench.poolguard.dev/team6"
)

// newWorld builds a world of nPools pools (half IPv4 team pools, at most
// 512), nNamespaces namespaces and nPods pods, frozen under rules.
func newWorld(rules policy.Rules, nPools, nNamespaces, nPods int) *world {
	v4, v6 := nPools/2, nPools-nPools/2-1
	w := &world{rules: rules, namespaces: make(map[string]policy.Namespace, nNamespaces), next: map[string]netip.Addr{}}
	sel := func(key string, t int) policy.Selector {
		return labels.SelectorFromSet(labels.Set{key: fmt.Sprint(t)})
	}
	for i := 0; i < v4; i++ {
		w.pools = append(w.pools, policy.Pool{Name: fmt.Sprintf("v4-%03d", i), Manual: true, NamespaceSelector: sel(worldTeamLabel, i),
			CIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i/256), byte(i % 256), 0}), 24)})
	}
	for i := 0; i < v6; i++ {
		w.pools = append(w.pools, policy.Pool{Name: fmt.Sprintf("v6-%03d", i), Manual: true, NamespaceSelector: sel(worldTeam6Label, i),
			CIDR: netip.MustParsePrefix(fmt.Sprintf("2001:db8:1:%x::/112", i))})
	}
	w.pools = append(w.pools, policy.Pool{Name: "general-v6", CIDR: netip.MustParsePrefix("2001:db8:2::/96")})
	w.index = policy.NewIndex(w.pools)
	w.nsList = make([]policy.Namespace, nNamespaces)
	for i := range w.nsList {
		t, t6 := i%v4, (i%v4)%v6
		ann := map[string]string{}
		switch (i / v4) % 10 {
		case 0, 1, 2, 3:
			ann[policy.AnnotationIPv4Pools] = policy.FormatPoolList([]string{w.pools[t].Name})
		case 4, 5, 6:
			ann[policy.AnnotationIPv6Pools] = policy.FormatPoolList([]string{w.pools[v4+t6].Name})
		case 7:
			ann[policy.AnnotationIPv4Pools] = policy.FormatPoolList([]string{w.pools[t].Name})
			ann[policy.AnnotationIPv6Pools] = policy.FormatPoolList([]string{w.pools[v4+t6].Name})
		}
		n := policy.Namespace{Name: fmt.Sprintf("ns-%05d", i), ResourceVersion: fmt.Sprint(1000 + i), Annotations: ann,
			Labels: map[string]string{worldTeamLabel: fmt.Sprint(t), worldTeam6Label: fmt.Sprint(t6), "environment": "production"}}
		w.nsList[i] = n
		w.namespaces[n.Name] = n
	}
	for k := 0; k < nPods; k++ {
		n := w.nsList[k%nNamespaces]
		idx := k / nNamespaces
		own := map[string]string{"kubectl.kubernetes.io/default-container": "app", "prometheus.io/scrape": "true"}
		if idx%4 == 3 {
			for _, fam := range policy.Families {
				if v, ok := n.Annotations[fam.AnnotationKey()]; ok {
					own[fam.AnnotationKey()] = v
				}
			}
		}
		frozenNS := n
		if k%50 == 7 {
			// Frozen before its namespace's default moved.
			frozenNS.Annotations = map[string]string{policy.AnnotationIPv6Pools: `["general-v6"]`}
			frozenNS.ResourceVersion = "1"
		}
		ann := rules.Freeze(own, frozenNS, w.index, nil).Apply(own)
		pod := poolctl.Pod{Namespace: n.Name, Name: fmt.Sprintf("app-%05d-%05d", k%nNamespaces, idx), Annotations: ann,
			Node: fmt.Sprintf("node-%04d", k%5000)}
		switch k % 100 {
		case 13:
			pod.HostNetwork = true
		case 29:
			pod.Finished = true
		default:
			pod.IPs = w.addresses(ann, n)
		}
		w.pods = append(w.pods, pod)
	}
	return w
}

// addresses gives a pod the next free address of each family it draws
// from, in its first frozen pool or its first default pool.
func (w *world) addresses(ann map[string]string, n policy.Namespace) []netip.Addr {
	frozen, err := w.rules.ReadFrozen(n.Name, ann)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, fam := range policy.Families {
		var pool policy.Pool
		if v := frozen.Value(fam); v != nil {
			refs, _ := policy.ParsePoolList(*v)
			pool, _ = w.index.Lookup(refs[0])
		} else if ds := policy.DefaultPools(fam, n, w.index, nil); len(ds) > 0 {
			pool = ds[0]
		}
		if !pool.CIDR.IsValid() {
			continue
		}
		a, ok := w.next[pool.Name]
		if !ok {
			a = pool.CIDR.Addr()
		}
		a = a.Next()
		w.next[pool.Name] = a
		out = append(out, a)
	}
	return out
}

// apiPod returns pod p as a ReplicaSet's pod object, running: what the
// API server sends for it (two containers, probes, resources, volumes,
// status with conditions and container statuses).
func apiPod(p poolctl.Pod) *corev1.Pod {
	app := "app-" + p.Namespace
	started := metav1.NewTime(metav1.Now().Rfc3339Copy().Time)
	out := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.Name, UID: types.UID(fmt.Sprintf("8e0c3f5a-1b2d-4c7e-9f10-%012d", len(p.Name))),
			ResourceVersion: "123456", CreationTimestamp: started, GenerateName: app + "-7c9f5d4b8-",
			Labels:      map[string]string{"app.kubernetes.io/name": app, "pod-template-hash": "7c9f5d4b8"},
			Annotations: p.Annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-7c9f5d4b8",
				UID: "0b7c2c1e-3f1a-4d4e-9a55-6f0d6c1e2a10", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:    p.Node,
			HostNetwork: p.HostNetwork,
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example/shop/app:1.42.0",
				Args:  []string{"--listen=:8080", "--log-format=json"},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env: []corev1.EnvVar{
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.podIP"}}},
					{Name: "DATABASE_HOST", Value: "mainframe.example.internal"},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
					PeriodSeconds: 5, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3},
				VolumeMounts:             []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}, {Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy:          corev1.PullIfNotPresent,
			}, {
				Name:                     "log-shipper",
				Image:                    "registry.example/infra/log-shipper:3.1.4",
				Resources:                corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy:          corev1.PullIfNotPresent,
			}},
			Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3607), Path: "token"}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				}, DefaultMode: ptr.To[int32](420)}}}},
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			RestartPolicy:                 corev1.RestartPolicyAlways,
			DNSPolicy:                     corev1.DNSClusterFirst,
			ServiceAccountName:            "default",
			SchedulerName:                 "default-scheduler",
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBurstable, HostIP: "10.0.0.1", StartTime: &started},
	}
	if p.Finished {
		out.Status.Phase = corev1.PodSucceeded
	}
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		out.Status.Conditions = append(out.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: started})
	}
	for _, c := range out.Spec.Containers {
		out.Status.ContainerStatuses = append(out.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image + "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ContainerID: "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Ready:       true, Started: ptr.To(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		})
	}
	for _, ip := range p.IPs {
		out.Status.PodIPs = append(out.Status.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(p.IPs) > 0 {
		out.Status.PodIP = p.IPs[0].String()
	}
	return out
}
