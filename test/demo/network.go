package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// The demo's pool ranges (see the pools manifest) and the name of its node.
var (
	trustedRange = netip.MustParsePrefix("198.51.100.0/24")
	generalRange = netip.MustParsePrefix("198.18.0.0/16")
)

const nodeName = "demo-node"

func demoRanges() []netip.Prefix { return []netip.Prefix{trustedRange, generalRange} }

const node = `apiVersion: v1
kind: Node
metadata:
  name: ` + nodeName + `
`

// nodeSteps builds the node and sets up the first two pods' networks.
func (d *demo) nodeSteps() error {
	d.title("A node sets the pods' networks up: the reference bridge plugin, with poolguard-ipam for addresses",
		"The node, each pod and the legacy firewall are network namespaces on this machine (names start with "+d.prefix+").",
		"The runtime runs the CNI chain with the pod's identity in CNI_ARGS; poolguard-ipam reads the pod's frozen annotation, never the namespace's.")
	if err := d.ok(node, "create", "-f", "-"); err != nil {
		return err
	}
	if err := d.ok("", "run", "web", "-n", "shop", "--image=registry.example/shop:1"); err != nil {
		return err
	}
	kc, err := os.ReadFile(d.kubeconfig)
	if err != nil {
		return err
	}
	d.lab, err = netlab.Start(netlab.Config{
		Prefix:     d.prefix,
		BinDir:     harness.BinDir(),
		APIServer:  d.env.Config.Host,
		Kubeconfig: kc,
		NodeName:   nodeName,
		PodRanges:  demoRanges(),
		Trusted:    []netip.Prefix{trustedRange},
		Log:        shellLog,
	})
	if err != nil {
		return err
	}
	d.boxes = map[string]*netlab.Sandbox{}
	say(fmt.Sprintf("(node %s, firewall %s; the conflist is %s)", d.lab.Node(), d.lab.Firewall(), d.lab.NetConfPath()))
	for _, p := range []struct{ ns, name string }{{"payments", "api"}, {"shop", "web"}} {
		if err := d.setUp(p.ns, p.name, p.name); err != nil {
			return err
		}
	}
	if err := d.inRange("payments/api", trustedRange); err != nil {
		return err
	}
	return d.inRange("shop/web", generalRange)
}

// firewallSteps shows the firewall's rule and its verdicts.
func (d *demo) firewallSteps() error {
	d.title("The legacy firewall trusts one source range, and nothing else",
		"It runs a TCP service on port 7070 that answers with the source address it sees.")
	if _, err := d.lab.Exec(d.lab.Firewall(), "nft", "list", "table", "inet", d.lab.FirewallTable()); err != nil {
		return err
	}
	if err := d.connect("payments/api", true); err != nil {
		return err
	}
	return d.connect("shop/web", false)
}

// driftSteps restarts the api pod's sandbox after the default changed.
func (d *demo) driftSteps() error {
	d.title("On the node: batch lands in the new range; api's new sandbox comes back in its frozen range",
		"batch, created after the change, gets the general range and the firewall refuses it.")
	if err := d.setUp("payments", "batch", "batch"); err != nil {
		return err
	}
	if err := d.inRange("payments/batch", generalRange); err != nil {
		return err
	}
	if err := d.connect("payments/batch", false); err != nil {
		return err
	}
	say("", "The api pod's sandbox dies and the runtime makes a new one (DEL, then ADD with a new container ID):",
		"without poolguard it would now read the namespace's new default; poolguard's plugin reads the frozen annotation.")
	old := d.boxes["payments/api"]
	if err := d.lab.DelPod(old); err != nil {
		return err
	}
	delete(d.boxes, "payments/api")
	if err := d.setUp("payments", "api", "api-2"); err != nil {
		return err
	}
	nu := d.boxes["payments/api"]
	say(fmt.Sprintf("container ID %s -> %s", old.ContainerID, nu.ContainerID))
	if err := d.inRange("payments/api", trustedRange); err != nil {
		return err
	}
	return d.connect("payments/api", true)
}

// releaseSteps deletes the pods and shows every address back in its pool.
func (d *demo) releaseSteps() error {
	d.title("Pods deleted: their addresses go back to the pools")
	for _, key := range []string{"payments/api", "shop/web", "payments/batch"} {
		if err := d.lab.DelPod(d.boxes[key]); err != nil {
			return err
		}
		delete(d.boxes, key)
		ns, name, _ := strings.Cut(key, "/")
		if err := d.ok("", "delete", "pod", name, "-n", ns, "--grace-period=0", "--force"); err != nil {
			return err
		}
	}
	if err := d.waitReleased(); err != nil {
		return err
	}
	return d.ok("", "get", "ippools")
}

// setUp runs the CNI chain for a pod created earlier, in a new sandbox.
func (d *demo) setUp(ns, name, sandbox string) error {
	var p corev1.Pod
	if err := d.env.Client.Get(d.ctx, types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		return err
	}
	s, err := d.lab.AddPod(netlab.PodRef{Namespace: ns, Name: name, UID: string(p.UID)}, sandbox)
	if err != nil {
		return err
	}
	d.boxes[ns+"/"+name] = s
	_, err = d.lab.Exec(s.Netns, "ip", "-br", "addr", "show", "dev", "eth0")
	return err
}

// inRange checks that the pod's address is in the range.
func (d *demo) inRange(key string, r netip.Prefix) error {
	a, _ := d.boxes[key].Addr(false)
	if !r.Contains(a) {
		return fmt.Errorf("%s got %s, outside %s", key, a, r)
	}
	fmt.Printf("  -> %s has %s, in %s, as expected\n", key, a, r)
	return nil
}

// connect opens a real TCP connection from the pod to the firewall with
// bash's /dev/tcp and checks the verdict.
func (d *demo) connect(key string, through bool) error {
	s := d.boxes[key]
	a, _ := s.Addr(false)
	fw, _ := d.lab.FirewallAddrs()
	fmt.Printf("\n%s (%s) connects to the firewall:\n", key, a)
	out, err := d.lab.Exec(s.Netns, "timeout", "10", "bash", "-c", fmt.Sprintf("cat < /dev/tcp/%s/%d", fw.Addr(), fw.Port()))
	switch {
	case through && err != nil:
		return fmt.Errorf("%s should get through the firewall: %w", key, err)
	case through && strings.TrimSpace(out) != a.String():
		return fmt.Errorf("the firewall saw %q, not %s's address %s", strings.TrimSpace(out), key, a)
	case through:
		fmt.Println("  -> connected; the firewall saw the pod's own address")
	case err == nil:
		return fmt.Errorf("%s should be refused by the firewall, but it connected (the firewall saw %q)", key, strings.TrimSpace(out))
	case !strings.Contains(out, "Connection refused"):
		return fmt.Errorf("%s should be refused by the firewall (a reset), not fail otherwise: %w", key, err)
	default:
		fmt.Println("  -> refused by the firewall")
	}
	return nil
}

// waitReleased waits, silently, until the IPPool status controller shows no
// allocation left.
func (d *demo) waitReleased() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var pools apiv1alpha1.IPPoolList
		if err := d.env.Client.List(d.ctx, &pools); err != nil {
			return err
		}
		busy := false
		for _, p := range pools.Items {
			busy = busy || p.Status.Allocated != 0 || p.Status.Free == 0
		}
		if !busy {
			return nil
		}
		if time.Now().After(deadline) || d.ctx.Err() != nil {
			return errors.New("IPPool status still shows allocations a minute after every pod was deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shellLog prints a command the lab ran and its output, as a shell would.
func shellLog(cmd, out string) {
	fmt.Printf("$ %s\n", cmd)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l != "" {
			fmt.Println("  " + l)
		}
	}
}
