package scale

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// Shape is the size of the simulated cluster.
type Shape struct {
	Nodes, Namespaces, Pools, Pods int
}

// Full is Kubernetes' scalability envelope (5,000 nodes, 150,000 pods),
// with 10,000 namespaces and 1,000 IPPools: more pools than any cluster
// poolguard's users described runs.
var Full = Shape{Nodes: 5000, Namespaces: 10000, Pools: 1000, Pods: 150000}

// Small is the default: a tenth of Full, a few minutes on two cores.
var Small = Shape{Nodes: 500, Namespaces: 1000, Pools: 100, Pods: 15000}

// ErrShape: a shape the address plan cannot hold.
var ErrShape = errors.New("invalid scale shape")

// The address plan (SPEC §5's benchmark and documentation ranges only):
// team IPv4 pools are /24s of 198.18.0.0/15 (at most 512), team IPv6 pools
// /112s of 2001:db8:1::/48, the Automatic IPv6 pool 2001:db8:2::/96; the
// probe pool the measures use is 198.51.100.0/24 and lives in both phases.
var (
	v4Space     = netip.MustParsePrefix("198.18.0.0/15")
	generalV6   = "2001:db8:2::/96"
	probeV4CIDR = "198.51.100.0/24"
)

// Names and labels of the simulated objects.
const (
	namePrefix    = "scale-"
	teamLabel     = "scale.poolguard.dev/team"
	team6Label    = "scale.poolguard.dev/team6"
	probeLabel    = "scale.poolguard.dev/probe"
	generalV6Name = namePrefix + "general-v6"
	probePool     = namePrefix + "probe-v4"
	probeNode     = namePrefix + "probe-node"
	// v4BlockSize cuts a team's /24 into 16 blocks of 16: ten nodes run a
	// team's pods, so each holds one or two blocks of its team's pool.
	v4BlockSize = 28
)

// v4Pools and v6Pools split the pools: half IPv4 team pools, the rest IPv6
// team pools and the one Automatic IPv6 pool.
func (s Shape) v4Pools() int { return s.Pools / 2 }
func (s Shape) v6Pools() int { return s.Pools - s.v4Pools() - 1 }

// Validate refuses shapes the address plan cannot hold.
func (s Shape) Validate() error {
	switch {
	case s.Nodes < 1 || s.Namespaces < 1 || s.Pods < 0:
		return fmt.Errorf("%w: %+v: nodes and namespaces must be positive", ErrShape, s)
	case s.Pools < 4:
		return fmt.Errorf("%w: %+v: at least 4 pools", ErrShape, s)
	case s.v4Pools() > 1<<(24-v4Space.Bits()):
		return fmt.Errorf("%w: %+v: at most %d IPv4 pools fit %s", ErrShape, s, 1<<(24-v4Space.Bits()), v4Space)
	case s.Namespaces < s.v4Pools():
		return fmt.Errorf("%w: %+v: at least one namespace per IPv4 pool", ErrShape, s)
	}
	// Half the pods take an IPv4 address from their team's /24 (254
	// usable, 16-address blocks): keep each team well inside it.
	perTeam := make([]int, s.v4Pools())
	for i := 0; i < s.Namespaces; i++ {
		if _, ok := s.Namespace(i).Annotations[policy.AnnotationIPv4Pools]; ok {
			perTeam[s.team(i)] += s.Pods / s.Namespaces
			if i < s.Pods%s.Namespaces {
				perTeam[s.team(i)]++
			}
		}
	}
	if most := slices.Max(perTeam); most > 200 {
		return fmt.Errorf("%w: %+v: up to %d IPv4 pods in one /24 team pool; at most 200 (more pools or fewer pods)", ErrShape, s, most)
	}
	return nil
}

// NodeName names node i.
func NodeName(i int) string { return fmt.Sprintf("%snode-%05d", namePrefix, i) }

// Node returns node i: the labels a cloud node carries.
func (s Shape) Node(i int) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: NodeName(i), Labels: map[string]string{
		"kubernetes.io/hostname":           NodeName(i),
		"kubernetes.io/os":                 "linux",
		"kubernetes.io/arch":               "amd64",
		"topology.kubernetes.io/zone":      fmt.Sprintf("zone-%d", i%3),
		"node.kubernetes.io/instance-type": "m7.2xlarge",
	}}}
}

// Pool returns pool i: IPv4 team pools first, then IPv6 team pools, then
// the Automatic IPv6 pool. Team pools are Manual and restricted to their
// team's namespaces by label.
func (s Shape) Pool(i int) *v1alpha1.IPPool {
	sel := func(key string, t int) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{key: fmt.Sprint(t)}}
	}
	switch v4 := s.v4Pools(); {
	case i < v4:
		base := v4Space.Addr().As4()
		base[1] += byte(i / 256)
		base[2] = byte(i % 256)
		return &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: v4PoolName(i)}, Spec: v1alpha1.IPPoolSpec{
			CIDR: netip.PrefixFrom(netip.AddrFrom4(base), 24).String(), BlockSize: v4BlockSize,
			AssignmentMode: v1alpha1.AssignmentManual, NamespaceSelector: sel(teamLabel, i),
		}}
	case i < v4+s.v6Pools():
		j := i - v4
		return &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: v6PoolName(j)}, Spec: v1alpha1.IPPoolSpec{
			CIDR:           fmt.Sprintf("2001:db8:1:%x::/112", j),
			AssignmentMode: v1alpha1.AssignmentManual, NamespaceSelector: sel(team6Label, j),
		}}
	default:
		return &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: generalV6Name}, Spec: v1alpha1.IPPoolSpec{CIDR: generalV6}}
	}
}

func v4PoolName(i int) string { return fmt.Sprintf("%sv4-%03d", namePrefix, i) }
func v6PoolName(i int) string { return fmt.Sprintf("%sv6-%03d", namePrefix, i) }

// NamespaceName names namespace i.
func NamespaceName(i int) string { return fmt.Sprintf("%sns-%05d", namePrefix, i) }

// team is namespace i's team: the IPv4 pool it may use, and the group of
// nodes its pods run on.
func (s Shape) team(i int) int { return i % s.v4Pools() }

// Namespace returns namespace i with its default: 40% an IPv4 team pool,
// 30% an IPv6 team pool, 10% both, 20% none (the Automatic IPv6 pool),
// mixed within each team.
func (s Shape) Namespace(i int) *corev1.Namespace {
	t, t6 := s.team(i), s.team(i)%s.v6Pools()
	ann := map[string]string{}
	switch (i / s.v4Pools()) % 10 {
	case 0, 1, 2, 3:
		ann[policy.AnnotationIPv4Pools] = fmt.Sprintf(`["%s"]`, v4PoolName(t))
	case 4, 5, 6:
		ann[policy.AnnotationIPv6Pools] = fmt.Sprintf(`["%s"]`, v6PoolName(t6))
	case 7:
		ann[policy.AnnotationIPv4Pools] = fmt.Sprintf(`["%s"]`, v4PoolName(t))
		ann[policy.AnnotationIPv6Pools] = fmt.Sprintf(`["%s"]`, v6PoolName(t6))
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        NamespaceName(i),
		Labels:      map[string]string{teamLabel: fmt.Sprint(t), team6Label: fmt.Sprint(t6), "environment": "production"},
		Annotations: ann,
	}}
}

// PodRef places pod k: namespace k mod Namespaces, and a node of its
// team's group (ten nodes per team at full size), as a scheduler with
// node pools would.
type PodRef struct {
	Namespace int
	Index     int
	Node      int
}

// PodAt returns where pod k of the population lives.
func (s Shape) PodAt(k int) PodRef {
	ns := k % s.Namespaces
	idx := k / s.Namespaces
	per := max(1, s.Nodes/s.v4Pools())
	node := (s.team(ns)*per + idx%per) % s.Nodes
	return PodRef{Namespace: ns, Index: idx, Node: node}
}

// Pod returns a pod as a ReplicaSet controller sends it (owner, two
// containers, probes, resources, volumes). Every fourth names its
// namespace's pools itself; the rest inherit the default.
func Pod(ns *corev1.Namespace, name string, idx int) *corev1.Pod {
	app := "app-" + ns.Name
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns.Name,
			Name:        name,
			Labels:      map[string]string{"app.kubernetes.io/name": app, "pod-template-hash": "7c9f5d4b8"},
			Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "app", "prometheus.io/scrape": "true"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-7c9f5d4b8",
				UID: "0b7c2c1e-3f1a-4d4e-9a55-6f0d6c1e2a10", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example/shop/app:1.42.0",
				Args:  []string{"--listen=:8080", "--log-format=json"},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env: []corev1.EnvVar{
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "DATABASE_HOST", Value: "mainframe.example.internal"},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}, PeriodSeconds: 5},
				VolumeMounts:   []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
			}, {
				Name:      "log-shipper",
				Image:     "registry.example/infra/log-shipper:3.1.4",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
			}},
			Volumes:                       []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			TerminationGracePeriodSeconds: ptr.To[int64](30),
		},
	}
	if idx%4 == 3 {
		for _, fam := range policy.Families {
			if v, ok := ns.Annotations[fam.AnnotationKey()]; ok {
				p.Annotations[fam.AnnotationKey()] = v
			}
		}
	}
	return p
}

// PopulationPodName names pod idx of a namespace.
func PopulationPodName(idx int) string { return fmt.Sprintf("w-%05d", idx) }

// The probe: what each phase measures with, the same in both. A Manual
// IPv4 pool for the probe namespaces, and a node of its own for ADDs.
func probePoolObject() *v1alpha1.IPPool {
	return &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: probePool}, Spec: v1alpha1.IPPoolSpec{
		CIDR: probeV4CIDR, AssignmentMode: v1alpha1.AssignmentManual,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{probeLabel: "true"}},
	}}
}

// probeNamespace returns probe namespace i of a phase.
func probeNamespace(phase string, i int) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        fmt.Sprintf("%sprobe-%s-%d", namePrefix, phase, i),
		Labels:      map[string]string{probeLabel: "true"},
		Annotations: map[string]string{policy.AnnotationIPv4Pools: fmt.Sprintf(`["%s"]`, probePool)},
	}}
}
