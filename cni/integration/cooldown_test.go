package integration

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
)

// TestCooldown: through the plugin binary and the API server, an address a
// DEL released in a small pool shared by two nodes is handed out to
// neither node before its cooldown (ipam.cooldown "3s") has passed; the
// pool reports exhaustion (code 11) saying that the cooldown is why, how
// many addresses and when the first is free again; at that time the
// address is handed out again and its release record dropped.
func TestCooldown(t *testing.T) {
	const (
		ns       = "cool"
		pool     = "cool-30"
		cidr     = "198.51.100.236/30" // 2 usable: .237 and .238
		cooldown = 3 * time.Second
	)
	createNamespace(t, ns, nil)
	createNode(t, "cool-node-a", nil)
	createNode(t, "cool-node-b", nil)
	createPool(t, pool, cidr, func(s *apiv1alpha1.IPPoolSpec) { s.AssignmentMode = apiv1alpha1.AssignmentManual })
	ann := frozen([]string{pool})
	confA := netConf{Node: "cool-node-a", Cooldown: cooldown.String()}
	confB := netConf{Node: "cool-node-b", Cooldown: cooldown.String()}
	pods := map[string]*call{}
	for _, name := range []string{"one", "two", "three", "four"} {
		pods[name] = &call{Cmd: "ADD", ContainerID: "cool-" + name, Pod: createPod(t, ns, name, "cool-node-a", ann), Conf: confA}
	}
	add := func(name string, conf netConf) outcome {
		c := *pods[name]
		c.Conf = conf
		return do(t, c)
	}

	one := mustOK(t, add("one", confA), "ADD one").Addrs()[0]
	mustOK(t, add("two", confB), "ADD two on the other node")
	before := time.Now()
	del := *pods["one"]
	del.Cmd = "DEL"
	mustOK(t, do(t, del), "DEL one")
	after := time.Now()

	// The block records the release, with the node whose slot it was.
	var blocks v1alpha1.IPAMBlockList
	if err := kc.List(context.Background(), &blocks, client.MatchingFields{"spec.pool": pool}); err != nil || len(blocks.Items) != 1 {
		t.Fatalf("the pool's blocks: %v %v", blocks.Items, err)
	}
	rel := blocks.Items[0].Spec.Released
	if r, ok := rel[slotOf4(t, cidr, one)]; !ok || r.Node != "cool-node-a" || r.At.Time.Before(before.Truncate(time.Second)) || r.At.After(after.Add(time.Second)) {
		t.Fatalf("the block's release records %v, want slot of %s by cool-node-a between %s and %s", rel, one, before, after)
	}

	// Within the cooldown neither node gets it: the pool is exhausted and
	// says why and until when.
	var freeAt time.Time
	for _, c := range []struct {
		name string
		conf netConf
	}{{"three", confA}, {"four", confB}} {
		o := add(c.name, c.conf)
		wantCode(t, o, 11, `no free address in "cool-30" (198.51.100.236/30): 1 address cooling down after release (ipam.cooldown 3s), the first free again at `)
		if o.Err.Msg != "poolguard-ipam: try again later" {
			t.Errorf("msg %q", o.Err.Msg)
		}
		m := regexp.MustCompile(`the first free again at (\S+)`).FindStringSubmatch(o.Err.Details)
		if m == nil {
			t.Fatalf("no time in %q", o.Err.Details)
		}
		at, err := time.Parse(time.RFC3339, strings.TrimRight(m[1], ".,;"))
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(before.Add(cooldown).Truncate(time.Second)) || at.After(after.Add(cooldown+time.Second)) {
			t.Fatalf("first free again at %s; released between %s and %s with cooldown %s", at, before, after, cooldown)
		}
		freeAt = at
	}
	if time.Now().After(freeAt) {
		t.Fatalf("setup: the ADDs took past the cooldown (%s); nothing was tested", freeAt)
	}

	// Once cooled down, the address is handed out again, and the record
	// that held it back is dropped.
	time.Sleep(time.Until(freeAt) + 100*time.Millisecond)
	three := mustOK(t, add("three", confA), "ADD after the cooldown").Addrs()[0]
	if three != one {
		t.Fatalf("after the cooldown got %s, want the released %s", three, one)
	}
	if err := kc.List(context.Background(), &blocks, client.MatchingFields{"spec.pool": pool}); err != nil {
		t.Fatal(err)
	}
	if rel := blocks.Items[0].Spec.Released; len(rel) != 0 {
		t.Fatalf("release records left after the address was handed out again: %v", rel)
	}
	wantCode(t, add("four", confB), 11, "exhausted")
}

// slotOf4 is an address's slot key in the one block of a small pool.
func slotOf4(t *testing.T, cidr string, a netip.Addr) string {
	t.Helper()
	p := netip.MustParsePrefix(cidr)
	b := allocator.NewBlock(allocator.Range{CIDR: p}, p, "")
	off, ok := b.Offset(a)
	if !ok {
		t.Fatalf("%s not in %s", a, cidr)
	}
	return strconv.Itoa(off)
}
