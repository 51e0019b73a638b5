package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// BenchmarkSweep: one garbage collection sweep of a cluster at 1% and at
// 100% of Kubernetes' scalability envelope (150,000 pods on 5,000 nodes,
// 10,000 namespaces, 1,000 IPPools: one claim per pod, 30 pods a node,
// each node's addresses in one block of 64, /26 or /122), read from an
// in-memory reader that lists as the informer cache does. 1% of the pods
// are gone and 0.2% of the slots name no claim, all within the grace
// period: the sweep finds them and frees nothing, as in a steady cluster.
//
// Besides ns/op and allocs/op it reports both per claim, and a line of
// their large/small ratios, which should stay near 1. Twice: with the
// processor's caches emptied before each sweep (caches=cold), as in
// production, where sweeps are a minute apart and admission and the
// informers run in between; and back to back (caches=hot), where the
// small cluster fits in the caches and the large one cannot.
func BenchmarkSweep(b *testing.B) {
	sizes := []int{1500, 150000}
	fixtures := map[int]*sweepFixture{}
	for _, caches := range []string{"cold", "hot"} {
		b.Run("caches="+caches, func(b *testing.B) {
			per := make([][3]float64, len(sizes)) // ns and allocs per claim, multiple of the floor
			for i, n := range sizes {
				b.Run(fmt.Sprintf("claims=%d", n), func(b *testing.B) {
					if fixtures[n] == nil {
						fixtures[n] = newSweepFixture(n)
					}
					per[i] = benchSweep(b, fixtures[n], caches == "cold")
				})
			}
			// The ratios as a result line of their own, beside the
			// sizes'.
			b.Run("ratio=large/small", func(b *testing.B) {
				small, large := per[0], per[len(per)-1]
				if small[0] == 0 || large[0] == 0 {
					b.Skip("both sizes must run")
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(large[0]/small[0], "ns/claim-ratio")
				b.ReportMetric(large[1]/max(small[1], 1e-9), "allocs/claim-ratio")
				b.ReportMetric(large[2]/small[2], "x-floor-ratio")
			})
		})
	}
}

// benchSweep times sweeps of f, emptying the processor's caches before
// each one when cold, and returns the ns and allocations per claim. It
// also times, untimed by the benchmark, the floor: a pass that only reads
// what any sweep must read (each pod's namespace, name, UID and
// annotations, each claim's name, pod and addresses, each slot's claim,
// each node's name), in the caches' order, under the same conditions. It
// reports the floor per claim and the sweep's cost as a multiple of it:
// what grows with the cluster beyond that multiple is the sweep's own.
func benchSweep(b *testing.B, f *sweepFixture, cold bool) [3]float64 {
	gc := &controller.Collector{Reader: f, Live: f, GracePeriod: time.Hour, Log: logr.Discard()}
	ctx := context.Background()
	// The first sweep meets the suspects; the timed ones carry them
	// over, as every sweep after it does.
	if _, err := gc.Sweep(ctx); err != nil {
		b.Fatal(err)
	}
	var flush []byte
	if cold {
		flush = make([]byte, 64<<20) // twice the largest L3 of the machines we run on
	}
	empty := func() {
		for i := 0; i < len(flush); i += 64 {
			flush[i]++
		}
	}
	var floor time.Duration
	var mallocs uint64
	var m0, m1 runtime.MemStats
	runtime.GC()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		empty()
		start := time.Now()
		if f.floor() == 0 {
			b.Fatal("floor read nothing")
		}
		floor += time.Since(start)
		empty()
		runtime.ReadMemStats(&m0)
		b.StartTimer()
		rep, err := gc.Sweep(ctx)
		b.StopTimer()
		runtime.ReadMemStats(&m1)
		mallocs += m1.Mallocs - m0.Mallocs
		b.StartTimer()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Suspects != f.garbage || rep.ClaimsReleased+rep.SlotsReleased+rep.BlocksDeleted != 0 {
			b.Fatalf("sweep: %+v, want %d suspects and nothing freed", rep, f.garbage)
		}
	}
	n := float64(len(f.claims))
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / n
	floorNs := float64(floor.Nanoseconds()) / float64(b.N) / n
	allocs := float64(mallocs) / float64(b.N) / n
	b.ReportMetric(ns, "ns/claim")
	b.ReportMetric(allocs, "allocs/claim")
	b.ReportMetric(floorNs, "floor-ns/claim")
	b.ReportMetric(ns/floorNs, "x-floor")
	return [3]float64{ns, allocs, ns / floorNs}
}

// floor reads what any sweep must read, from the stores, and returns a
// sum of it.
func (f *sweepFixture) floor() int {
	sum := 0
	touch := func(s string) {
		if len(s) > 0 {
			sum += int(s[0]) + int(s[len(s)-1])
		}
	}
	for _, x := range f.stores["Pod"].List() {
		p := x.(*metav1.PartialObjectMetadata)
		touch(p.Namespace)
		touch(p.Name)
		touch(string(p.UID))
		sum += len(p.Annotations)
	}
	for _, x := range f.stores["Node"].List() {
		touch(x.(*metav1.PartialObjectMetadata).Name)
	}
	for _, x := range f.stores["IPAMClaim"].List() {
		c := x.(*v1alpha1.IPAMClaim)
		touch(c.Name)
		touch(c.Spec.Pod.Namespace)
		touch(c.Spec.Pod.Name)
		touch(c.Spec.Pod.UID)
		if c.DeletionTimestamp != nil {
			sum++
		}
		for _, a := range c.Spec.Addresses {
			touch(a.Address)
			sum += int(a.Seq)
		}
	}
	for _, x := range f.stores["IPAMBlock"].List() {
		o := x.(*v1alpha1.IPAMBlock)
		touch(o.ResourceVersion)
		for _, a := range o.Spec.Allocations {
			touch(a.Claim)
			sum += int(a.Slot) + int(a.Seq)
		}
	}
	return sum
}

// sweepFixture is a cluster's claims, blocks, pods and nodes as the
// leader's cache holds them, served as the cache serves them: by
// GetInformer, with the informers' stores, and by List.
type sweepFixture struct {
	claims, blocks, pods, nodes []client.Object
	// stores are client-go stores of the same objects, by kind.
	stores map[string]toolscache.Store
	// garbage is how many candidates a sweep finds: claims of gone pods,
	// slots no claim records, empty blocks of deleted nodes.
	garbage int
}

// newSweepFixture builds a cluster of n pods, each with one claim of one
// address. Objects carry the metadata the API server gives them (labels,
// annotations, owners, managedFields), then pass through the transforms of
// poolguard-webhook's cache (controller.CacheOptions), as in its cache.
func newSweepFixture(n int) *sweepFixture {
	f := &sweepFixture{}
	defer f.transform(controller.CacheOptions())
	const podsPerNode = 30
	nodes := n / podsPerNode
	namespaces := max(n/15, 1)
	pools := max(n/150, 2)
	// 40% of the nodes draw from IPv4 pools (/22: 16 blocks of /26, all
	// in 198.18.0.0/15), the others from IPv6 pools (/112 in
	// 2001:db8::/32, blocks of /122).
	nv4 := nodes * 2 / 5
	v4pools := (nv4 + 15) / 16
	v6pools := max(pools-v4pools, 1)
	uid := func(kind string, i int) types.UID {
		h := sha256.Sum256([]byte(fmt.Sprint(kind, i)))
		s := hex.EncodeToString(h[:16])
		return types.UID(s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32])
	}
	for k := range nodes {
		node := fmt.Sprintf("node-%05d", k)
		var r allocator.Range
		var cidr netip.Prefix
		if k < nv4 {
			base := netip.AddrFrom4([4]byte{198, 18, 0, 0})
			r = allocator.Range{Pool: fmt.Sprintf("pool-%04d", k/16), CIDR: netip.PrefixFrom(addOffset(base, 1024*(k/16)), 22), BlockSize: 26}
			cidr = netip.PrefixFrom(addOffset(base, 64*k), 26)
		} else {
			j := k - nv4
			p := j % v6pools
			base := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(p >> 8), byte(p)})
			r = allocator.Range{Pool: fmt.Sprintf("pool-%04d", v4pools+p), CIDR: netip.PrefixFrom(base, 112), BlockSize: 122}
			cidr = netip.PrefixFrom(addOffset(base, 64*(j/v6pools)), 122)
		}
		blk := allocator.NewBlock(r, cidr, node)
		take := func(claim string) (netip.Addr, uint64) {
			off := len(blk.Slots) + 2
			blk.NextSeq++
			blk.Slots[off] = allocator.Slot{Claim: claim, Node: node, Seq: blk.NextSeq}
			blk.Cursor = off + 1
			return blk.Addr(off), blk.NextSeq
		}
		for s := range podsPerNode {
			i := k*podsPerNode + s
			pod := &metav1.PartialObjectMetadata{ObjectMeta: podMeta(i, namespaces, uid("pod", i), r.Pool)}
			ref := allocator.PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
			if i%1000 == 500 {
				// A static pod: its claim names the runtime's UID, which
				// its mirror pod carries in an annotation.
				ref.UID = string(uid("static", i))
				pod.Annotations[policy.AnnotationMirrorPod] = ref.UID
			}
			h := sha256.Sum256([]byte(fmt.Sprint("ctr", i)))
			ctr := hex.EncodeToString(h[:])
			id := allocator.ClaimID("", ctr, "eth0")
			addr, seq := take(id)
			c := kubestore.ClaimToAPI(&allocator.Claim{ID: id, ContainerID: ctr, IfName: "eth0", Node: node, Pod: ref,
				Addresses: []allocator.Assigned{{Pool: r.Pool, PoolCIDR: r.CIDR, Block: cidr, Addr: addr, Seq: seq}}})
			c.UID, c.ResourceVersion, c.Finalizers = uid("claim", i), fmt.Sprint(1000000+i), []string{v1alpha1.FinalizerHistory}
			c.CreationTimestamp = metav1.Now()
			c.ManagedFields = managedFields("poolguard-ipam", 1, 400)
			f.claims = append(f.claims, c)
			if i%100 == 7 {
				f.garbage++ // its pod is gone
			} else {
				f.pods = append(f.pods, pod)
			}
			if i%500 == 3 {
				// An ADD killed before its claim write.
				take(allocator.ClaimID("", ctr+"-killed", "eth0"))
				f.garbage++
			}
		}
		o := kubestore.BlockToAPI(blk)
		o.UID, o.ResourceVersion = uid("block", k), fmt.Sprint(2000000+k)
		o.ManagedFields = managedFields("poolguard-ipam", 1, 40*len(blk.Slots))
		f.blocks = append(f.blocks, o)
		f.nodes = append(f.nodes, &metav1.PartialObjectMetadata{ObjectMeta: nodeMeta(node, uid("node", k))})
	}
	// Empty blocks of deleted nodes: 1 per 100 nodes.
	for k := range max(nodes/100, 1) {
		base := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff})
		r := allocator.Range{Pool: "pool-0000", CIDR: netip.PrefixFrom(base, 112), BlockSize: 122}
		o := kubestore.BlockToAPI(allocator.NewBlock(r, netip.PrefixFrom(addOffset(base, 64*k), 122), fmt.Sprintf("gone-%d", k)))
		o.ResourceVersion = fmt.Sprint(3000000 + k)
		f.blocks = append(f.blocks, o)
		f.garbage++
	}
	return f
}

// podMeta is the metadata of a ReplicaSet's pod frozen by poolguard, as a
// metadata informer receives it.
func podMeta(i, namespaces int, uid types.UID, pool string) metav1.ObjectMeta {
	app := fmt.Sprintf("app-%d", i/10)
	return metav1.ObjectMeta{
		Name: fmt.Sprintf("%s-7d9f8c6b5-%05d", app, i), Namespace: fmt.Sprintf("ns-%05d", i%namespaces), UID: uid,
		ResourceVersion: fmt.Sprint(5000000 + i), Generation: 1, CreationTimestamp: metav1.Now(),
		Labels: map[string]string{"app": app, "pod-template-hash": "7d9f8c6b5", "app.kubernetes.io/version": "1.4.2", "team": "payments"},
		Annotations: map[string]string{
			"cni.projectcalico.org/ipv4pools":   `["` + pool + `"]`,
			policy.AnnotationProvenance:         `{"ipv4pools":"namespace","ipv6pools":"default","namespace":"payments","namespaceResourceVersion":"233","ranges":{"` + pool + `":"198.18.0.0/22"}}`,
			"kubectl.kubernetes.io/restartedAt": "2026-11-28T10:01:02Z",
		},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-7d9f8c6b5", UID: uid, Controller: ptrTrue(), BlockOwnerDeletion: ptrTrue()}},
		ManagedFields:   append(managedFields("kube-controller-manager", 1, 700), managedFields("kubelet", 1, 900)...),
	}
}

// nodeMeta is a node's metadata as a metadata informer receives it.
func nodeMeta(name string, uid types.UID) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, UID: uid, ResourceVersion: "42", CreationTimestamp: metav1.Now(),
		Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "m6i.2xlarge",
			"topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": "eu-west-1a", "node-role.kubernetes.io/worker": "",
			"nodepool": "general",
		},
		Annotations: map[string]string{
			"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true",
			"csi.volume.kubernetes.io/nodeid": `{"ebs.csi.aws.com":"i-0123456789abcdef0"}`, "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
		},
		ManagedFields: append(managedFields("kubelet", 2, 1500), managedFields("kube-controller-manager", 1, 600)...),
	}
}

// managedFields returns n entries of a manager, each with a FieldsV1 of
// size bytes.
func managedFields(manager string, n, size int) []metav1.ManagedFieldsEntry {
	out := make([]metav1.ManagedFieldsEntry, n)
	for i := range out {
		out[i] = metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
			Time: &metav1.Time{Time: time.Now()}, FieldsType: "FieldsV1",
			FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{` + strings.Repeat(`"f:x":{},`, size/9) + `}}`)}
		if i > 0 {
			out[i].Subresource = "status"
		}
	}
	return out
}

func ptrTrue() *bool { t := true; return &t }

// addOffset returns a + off.
func addOffset(a netip.Addr, off int) netip.Addr {
	b := a.As16()
	carry := off
	for i := 15; i >= 0 && carry > 0; i-- {
		s := int(b[i]) + carry&0xff
		b[i] = byte(s)
		carry = carry>>8 + s>>8
	}
	if a.Is4() {
		return netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrFrom16(b)
}

// transform applies the cache's transforms to every object.
func (f *sweepFixture) transform(o cache.Options) {
	byType := map[string]toolscache.TransformFunc{}
	for obj, by := range o.ByObject {
		byType[fmt.Sprintf("%T", obj)] = by.Transform
	}
	apply := func(objs []client.Object, t toolscache.TransformFunc) {
		if t == nil {
			t = o.DefaultTransform
		}
		for _, x := range objs {
			if t != nil {
				if _, err := t(x); err != nil {
					panic(err)
				}
			}
		}
	}
	apply(f.claims, nil)
	apply(f.blocks, nil)
	apply(f.pods, byType["*v1.Pod"])
	apply(f.nodes, byType["*v1.Node"])
	f.stores = map[string]toolscache.Store{}
	for kind, objs := range map[string][]client.Object{"IPAMClaim": f.claims, "IPAMBlock": f.blocks, "Pod": f.pods, "Node": f.nodes} {
		st := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
		for _, o := range objs {
			if err := st.Add(o); err != nil {
				panic(err)
			}
		}
		f.stores[kind] = st
	}
}

// GetInformer returns an informer with the store of obj's kind, as the
// informer cache does (its informers are client-go's).
func (f *sweepFixture) GetInformer(_ context.Context, obj client.Object, _ ...cache.InformerGetOption) (cache.Informer, error) {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	switch obj.(type) {
	case *v1alpha1.IPAMClaim:
		kind = "IPAMClaim"
	case *v1alpha1.IPAMBlock:
		kind = "IPAMBlock"
	}
	st, ok := f.stores[kind]
	if !ok {
		return nil, fmt.Errorf("sweep fixture: no informer of %T %s", obj, kind)
	}
	return storeInformer{store: st}, nil
}

// storeInformer is an informer of which the sweep uses the store only.
type storeInformer struct {
	cache.Informer
	store toolscache.Store
}

func (i storeInformer) GetStore() toolscache.Store { return i.store }

// List serves a list as controller-runtime's cache does
// (internal.CacheReader.List): the stored objects are collected, deep
// copied unless the caller passed client.UnsafeDisableDeepCopy, and set
// into the list's items with apimeta.SetList, which copies each struct.
func (f *sweepFixture) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	var kind string
	switch l := list.(type) {
	case *v1alpha1.IPAMClaimList:
		kind = "IPAMClaim"
	case *v1alpha1.IPAMBlockList:
		kind = "IPAMBlock"
	case *metav1.PartialObjectMetadataList:
		kind = strings.TrimSuffix(l.GroupVersionKind().Kind, "List")
	}
	st, ok := f.stores[kind]
	if !ok {
		return fmt.Errorf("sweep fixture: no list of %T %s", list, kind)
	}
	o := client.ListOptions{}
	o.ApplyOptions(opts)
	if o.LabelSelector != nil || o.FieldSelector != nil || o.Namespace != "" {
		return fmt.Errorf("sweep fixture: the sweep lists everything, got %+v", o)
	}
	noCopy := o.UnsafeDisableDeepCopy != nil && *o.UnsafeDisableDeepCopy
	objs := st.List() // the indexer's List, in its order
	out := make([]kruntime.Object, 0, len(objs))
	for _, x := range objs {
		obj := x.(kruntime.Object)
		if !noCopy {
			obj = obj.DeepCopyObject()
		}
		out = append(out, obj)
	}
	return apimeta.SetList(list, out)
}

// Get is not the sweep's: it lists, and frees nothing (the re-check before
// freeing, which reads live, fails).
func (f *sweepFixture) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return fmt.Errorf("sweep fixture: Get")
}
