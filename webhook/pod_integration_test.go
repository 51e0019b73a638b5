package webhook_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// TestFreeze covers the freeze through the API server: namespace default
// copied, pod annotation winning, later namespace edits not reaching
// existing pods, generateName pods, dry-run as the "explain" query, and
// hostNetwork pods left alone.
func TestFreeze(t *testing.T) {
	ctx := context.Background()
	c, warns := newClient(t)
	nsName := uniq(t, "ns")
	trusted := uniq(t, "trusted")
	general := uniq(t, "general")
	v6 := uniq(t, "v6")
	makePool(t, trusted, "198.51.100.0/24", true, nsName)
	makePool(t, general, "198.18.0.0/16", false)
	makePool(t, v6, "2001:db8:1::/48", false)
	ns := makeNamespace(t, c, nsName, map[string]string{policy.AnnotationIPv4Pools: `["` + trusted + `"]`})

	t.Run("namespace default frozen onto pod", func(t *testing.T) {
		p := pod(nsName, "from-namespace", nil)
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got := p.Annotations[policy.AnnotationIPv4Pools]; got != `["`+trusted+`"]` {
			t.Fatalf("ipv4pools = %q, want the namespace's default", got)
		}
		if _, ok := p.Annotations[policy.AnnotationIPv6Pools]; ok {
			t.Fatalf("ipv6pools set although neither pod nor namespace names one: %v", p.Annotations)
		}
		prov := provenance(t, p)
		if prov.IPv4 != policy.SourceNamespace || prov.IPv6 != policy.SourceDefault || prov.Namespace != nsName {
			t.Fatalf("provenance = %+v", prov)
		}
		var live corev1.Namespace
		if err := c.Get(ctx, client.ObjectKey{Name: nsName}, &live); err != nil {
			t.Fatal(err)
		}
		if prov.NamespaceResourceVersion != live.ResourceVersion {
			t.Fatalf("provenance records namespace resourceVersion %q, namespace is at %q", prov.NamespaceResourceVersion, live.ResourceVersion)
		}
	})

	t.Run("pod annotation wins, per family", func(t *testing.T) {
		warns.Take()
		p := pod(nsName, "own-pools", map[string]string{
			policy.AnnotationIPv4Pools: `["` + general + `"]`,
			policy.AnnotationIPv6Pools: `["` + v6 + `"]`,
		})
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		prov := provenance(t, p)
		if p.Annotations[policy.AnnotationIPv4Pools] != `["`+general+`"]` || prov.IPv4 != policy.SourcePod || prov.IPv6 != policy.SourcePod {
			t.Fatalf("annotations = %v", p.Annotations)
		}
		if w := strings.Join(warns.Take(), "\n"); !strings.Contains(w, "overrides namespace") {
			t.Fatalf("no warning that the pod overrides its namespace's default; warnings: %q", w)
		}
	})

	t.Run("generateName pod", func(t *testing.T) {
		p := pod(nsName, "", nil)
		p.GenerateName = "gen-"
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Name, "gen-") || provenance(t, p).IPv4 != policy.SourceNamespace {
			t.Fatalf("generateName pod not frozen: %s %v", p.Name, p.Annotations)
		}
	})

	t.Run("namespace changed afterwards leaves existing pods alone", func(t *testing.T) {
		before := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: nsName, Name: "from-namespace"}, before); err != nil {
			t.Fatal(err)
		}
		warns.Take()
		patch := client.MergeFrom(ns.DeepCopy())
		ns.Annotations[policy.AnnotationIPv4Pools] = `["` + general + `"]`
		if err := c.Patch(ctx, ns, patch); err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(warns.Take(), "\n"); !strings.Contains(w, "existing pods keep") {
			t.Fatalf("no warning that existing pods keep their pools: %q", w)
		}
		after := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: nsName, Name: "from-namespace"}, after); err != nil {
			t.Fatal(err)
		}
		if after.Annotations[policy.AnnotationIPv4Pools] != `["`+trusted+`"]` {
			t.Fatalf("existing pod changed to %q", after.Annotations[policy.AnnotationIPv4Pools])
		}
		// New pods follow the new default once the webhook has seen it.
		var fresh *corev1.Pod
		for i := 0; i < 100; i++ {
			fresh = pod(nsName, "", nil)
			fresh.GenerateName = "after-"
			err := c.Create(ctx, fresh, client.DryRunAll)
			if apierrors.IsConflict(err) && strings.Contains(err.Error(), "create the pod again") {
				// The new default reached the cache between the
				// mutating and the validating call: refused as that
				// race, for the client to retry.
				sleep()
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if fresh.Annotations[policy.AnnotationIPv4Pools] == `["`+general+`"]` {
				break
			}
			sleep()
		}
		if fresh.Annotations[policy.AnnotationIPv4Pools] != `["`+general+`"]` {
			t.Fatalf("new pod got %q, want the new default", fresh.Annotations[policy.AnnotationIPv4Pools])
		}
	})

	t.Run("dry-run create explains the result and creates nothing", func(t *testing.T) {
		p := pod(nsName, "explain", nil)
		if err := c.Create(ctx, p, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		if provenance(t, p).IPv4 != policy.SourceNamespace || p.Annotations[policy.AnnotationIPv4Pools] == "" {
			t.Fatalf("dry-run result not frozen: %v", p.Annotations)
		}
		err := c.Get(ctx, client.ObjectKeyFromObject(p), &corev1.Pod{})
		if err == nil {
			t.Fatal("dry-run created the pod")
		}
	})

	t.Run("hostNetwork pods untouched", func(t *testing.T) {
		p := pod(nsName, "host", map[string]string{policy.AnnotationIPv4Pools: `["nope"]`})
		p.Spec.HostNetwork = true
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Annotations[policy.AnnotationProvenance]; ok {
			t.Fatalf("hostNetwork pod was frozen: %v", p.Annotations)
		}
		if p.Annotations[policy.AnnotationIPv4Pools] != `["nope"]` {
			t.Fatalf("hostNetwork pod's annotations changed: %v", p.Annotations)
		}
	})

	t.Run("forged provenance is not trusted", func(t *testing.T) {
		other := uniq(t, "other")
		makeNamespace(t, c, other, nil)
		forged := policy.Provenance{IPv4: policy.SourceNamespace, IPv6: policy.SourceDefault, Namespace: other, NamespaceResourceVersion: "1"}
		// The pod names a pool its namespace may use, and claims it came
		// from the namespace, which names none: the claim is overwritten.
		p := pod(other, "forged-allowed", map[string]string{
			policy.AnnotationIPv4Pools:  `["` + general + `"]`,
			policy.AnnotationProvenance: forged.String(),
		})
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if prov := provenance(t, p); prov.IPv4 != policy.SourcePod || prov.Namespace != "" {
			t.Fatalf("forged provenance kept: %+v", prov)
		}
		// Garbage in the provenance annotation is replaced too.
		p = pod(other, "forged-garbage", map[string]string{policy.AnnotationProvenance: "{not json"})
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		if prov := provenance(t, p); prov.IPv4 != policy.SourceDefault {
			t.Fatalf("garbage provenance kept: %+v", prov)
		}
		// Claiming the trusted pool through a forged provenance gets
		// nowhere: the pool does not allow this namespace.
		p = pod(other, "forged-trusted", map[string]string{
			policy.AnnotationIPv4Pools:  `["` + trusted + `"]`,
			policy.AnnotationProvenance: forged.String(),
		})
		mustContain(t, c.Create(ctx, p), "does not allow namespace", trusted)
	})
}

// TestPodCreateDenied covers every reason a pod create is refused, each
// with a message that names the key, the value and the reason.
func TestPodCreateDenied(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	nsName := uniq(t, "ns")
	trusted := uniq(t, "trusted")
	disabled := uniq(t, "off")
	v6 := uniq(t, "v6")
	makePool(t, trusted, "203.0.113.0/25", true, "somebody-else")
	dp := makePool(t, disabled, "203.0.113.128/25", false)
	makePool(t, v6, "2001:db8:2::/48", false)
	dp.Spec.Disabled = true
	if err := env.Client.Update(ctx, dp); err != nil {
		t.Fatal(err)
	}
	makeNamespace(t, c, nsName, nil)
	v4 := policy.AnnotationIPv4Pools
	cases := []struct {
		name  string
		ann   map[string]string
		want  []string
		delay bool
	}{
		{"forbidden pool", map[string]string{v4: `["` + trusted + `"]`}, []string{v4, trusted, "does not allow namespace"}, false},
		{"unknown pool", map[string]string{v4: `["no-such-pool"]`}, []string{v4, "no-such-pool", "does not exist"}, false},
		{"wrong family", map[string]string{v4: `["` + v6 + `"]`}, []string{v4, v6, "is IPv6"}, false},
		{"disabled pool", map[string]string{v4: `["` + disabled + `"]`}, []string{v4, disabled, "disabled"}, true},
		{"not JSON", map[string]string{v4: `pool-a`}, []string{v4, "JSON list"}, false},
		{"not strings", map[string]string{v4: `[1]`}, []string{v4, "not a string"}, false},
		{"empty list", map[string]string{v4: `[]`}, []string{v4, "empty"}, false},
		{"duplicates", map[string]string{v4: `["a","a"]`}, []string{v4, "listed twice"}, false},
		{"oversized", map[string]string{v4: `["` + strings.Repeat("a", 5000) + `"]`}, []string{v4, "bytes"}, false},
		// 225 KB, as an attacker would send to fill events and responses.
		{"huge", map[string]string{v4: `["` + strings.Repeat("b", 225*1024) + `"]`}, []string{v4, "230404 bytes in all"}, false},
		{"cidr of no pool", map[string]string{v4: `["198.19.0.0/24"]`}, []string{v4, "does not exist"}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(nsName, "denied-"+string(rune('a'+i)), tc.ann)
			err := c.Create(ctx, p)
			for tries := 0; tc.delay && err == nil && tries < 100; tries++ {
				// The disable may not have reached the webhook's cache yet.
				_ = c.Delete(ctx, p)
				sleep()
				p = pod(nsName, "denied-"+string(rune('a'+i)), tc.ann)
				err = c.Create(ctx, p)
			}
			mustContain(t, err, tc.want...)
			if !strings.Contains(err.Error(), "denied the request") {
				t.Fatalf("not refused by the webhook: %v", err)
			}
			// A denial quotes a bounded prefix of what the client sent.
			if n := len(err.Error()); n > 4*policy.MaxQuotedBytes+1024 {
				t.Fatalf("denial of %d bytes echoes the value back: %.300s", n, err)
			}
		})
	}
}

// TestFrozenAnnotationsImmutable tries every way a client can edit a pod's
// frozen annotations, including the status subresource, and checks that
// each is refused while updates that leave them alone still go through.
func TestFrozenAnnotationsImmutable(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	nsName := uniq(t, "ns")
	poolA := uniq(t, "a")
	poolB := uniq(t, "b")
	makePool(t, poolA, "198.19.0.0/24", false)
	makePool(t, poolB, "198.19.1.0/24", false)
	makeNamespace(t, c, nsName, map[string]string{policy.AnnotationIPv4Pools: `["` + poolA + `"]`})
	p := pod(nsName, "frozen", nil)
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	v4 := policy.AnnotationIPv4Pools
	other := `["` + poolB + `"]`
	key := client.ObjectKeyFromObject(p)
	fresh := func(t *testing.T) *corev1.Pod {
		t.Helper()
		var cur corev1.Pod
		if err := c.Get(ctx, key, &cur); err != nil {
			t.Fatal(err)
		}
		return &cur
	}
	raw := func(pt types.PatchType, body string) func(t *testing.T) error {
		return func(t *testing.T) error {
			return c.Patch(ctx, fresh(t), client.RawPatch(pt, []byte(body)))
		}
	}
	esc := strings.ReplaceAll(v4, "/", "~1")
	attempts := []struct {
		name string
		do   func(t *testing.T) error
	}{
		{"merge patch (kubectl annotate --overwrite)", raw(types.MergePatchType, `{"metadata":{"annotations":{"`+v4+`":`+jsonString(other)+`}}}`)},
		{"merge patch removing the key", raw(types.MergePatchType, `{"metadata":{"annotations":{"`+v4+`":null}}}`)},
		{"JSON patch removing the key", raw(types.JSONPatchType, `[{"op":"remove","path":"/metadata/annotations/`+esc+`"}]`)},
		{"JSON patch removing the provenance", raw(types.JSONPatchType, `[{"op":"remove","path":"/metadata/annotations/`+strings.ReplaceAll(policy.AnnotationProvenance, "/", "~1")+`"}]`)},
		{"strategic merge patch", raw(types.StrategicMergePatchType, `{"metadata":{"annotations":{"`+v4+`":`+jsonString(other)+`}}}`)},
		{"adding ipv6pools", raw(types.MergePatchType, `{"metadata":{"annotations":{"`+policy.AnnotationIPv6Pools+`":"[\"x\"]"}}}`)},
		{"update", func(t *testing.T) error {
			cur := fresh(t)
			cur.Annotations[v4] = other
			return c.Update(ctx, cur)
		}},
		{"server-side apply by a second field manager", func(t *testing.T) error {
			body := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"frozen","namespace":"` + nsName + `","annotations":{"` + v4 + `":` + jsonString(other) + `}}}`
			return c.Patch(ctx, fresh(t), client.RawPatch(types.ApplyPatchType, []byte(body)), client.FieldOwner("intruder"), client.ForceOwnership)
		}},
		{"pods/status update", func(t *testing.T) error {
			cur := fresh(t)
			cur.Annotations[v4] = other
			return c.Status().Update(ctx, cur)
		}},
		{"pods/status merge patch", func(t *testing.T) error {
			return c.Status().Patch(ctx, fresh(t), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+v4+`":null}}}`)))
		}},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			mustContain(t, a.do(t), "delete the pod and create it again")
			if got := fresh(t).Annotations[v4]; got != `["`+poolA+`"]` {
				t.Fatalf("annotation changed to %q", got)
			}
		})
	}
	t.Run("updates that leave the frozen annotations alone pass", func(t *testing.T) {
		cur := fresh(t)
		cur.Status.Phase = corev1.PodRunning
		cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if err := c.Status().Update(ctx, cur); err != nil {
			t.Fatalf("status update: %v", err)
		}
		cur = fresh(t)
		cur.Labels = map[string]string{"app": "x"}
		cur.Annotations["unrelated"] = "yes"
		if err := c.Update(ctx, cur); err != nil {
			t.Fatalf("unrelated update: %v", err)
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestPoolRecreatedUnderSameName: the freeze pins each named pool to its
// range; after the pool is deleted and re-created under the same name with
// another range, the admitted pod's provenance still names the old range (so
// the plugin refuses the new one, see cni/integration), and a new pod is
// pinned to the new range.
func TestPoolRecreatedUnderSameName(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	nsName := uniq(t, "ns")
	name := uniq(t, "moving")
	makePool(t, name, "198.51.100.0/26", true, nsName)
	makeNamespace(t, c, nsName, map[string]string{policy.AnnotationIPv4Pools: `["` + name + `"]`})
	before := pod(nsName, "before", nil)
	if err := c.Create(ctx, before); err != nil {
		t.Fatal(err)
	}
	if got := provenance(t, before).Ranges[name]; got != "198.51.100.0/26" {
		t.Fatalf("provenance pins %q to %q, want its range 198.51.100.0/26: %v", name, got, before.Annotations)
	}
	if err := env.Client.Delete(ctx, &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	makePool(t, name, "198.51.100.64/26", true, nsName)
	var after *corev1.Pod
	for range 100 {
		after = pod(nsName, "", nil)
		after.GenerateName = "after-"
		if err := c.Create(ctx, after); err != nil {
			t.Fatal(err)
		}
		if provenance(t, after).Ranges[name] == "198.51.100.64/26" {
			break
		}
		sleep() // the webhook's pool cache has not seen the new pool yet
	}
	if got := provenance(t, after).Ranges[name]; got != "198.51.100.64/26" {
		t.Fatalf("a pod created after the re-creation pins %q to %q", name, got)
	}
	var live corev1.Pod
	if err := c.Get(ctx, client.ObjectKeyFromObject(before), &live); err != nil {
		t.Fatal(err)
	}
	if got := provenance(t, &live).Ranges[name]; got != "198.51.100.0/26" {
		t.Fatalf("the admitted pod's pin changed to %q", got)
	}
}
