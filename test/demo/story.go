package main

import (
	"fmt"
)

func (d *demo) story() error {
	v4 := "cni.projectcalico.org/ipv4pools"
	steps := []func() error{
		func() error {
			d.title("The security team declares the address ranges (IPPools, cluster scoped)",
				"mainframe-trusted is the range the legacy firewall trusts: Manual (used only when named), and only the payments namespace may draw from it.",
				"general is the default range for everyone else.")
			if err := d.ok(pools, "apply", "-f", "-"); err != nil {
				return err
			}
			d.waitForWebhookCache("general")
			return d.ok("", "get", "ippools")
		},
		func() error {
			d.title("Two teams get namespaces; the payments owner sets a default for their pods")
			if err := d.ok("", "create", "namespace", "payments"); err != nil {
				return err
			}
			if err := d.ok("", "create", "namespace", "shop"); err != nil {
				return err
			}
			return d.ok("", "annotate", "namespace", "payments", v4+`=["mainframe-trusted"]`)
		},
		func() error {
			d.title("Mistakes are refused when they are made, not later on a node",
				"A typo in a pool name:")
			if err := d.fails("does not exist", "", "annotate", "namespace", "shop", v4+`=["mainframe-trustd"]`); err != nil {
				return err
			}
			say("The shop team trying to use the firewall's range:")
			return d.fails("does not allow namespace", "", "annotate", "namespace", "shop", v4+`=["mainframe-trusted"]`)
		},
		func() error {
			d.title("Which pools would a pod get, and why? A server-side dry run answers without creating anything")
			return d.ok("", "run", "probe", "-n", "payments", "--image=registry.example/api:1", "--dry-run=server",
				"-o", `jsonpath={.metadata.annotations}{"\n"}`)
		},
		func() error {
			d.title("A payments pod is created: the namespace default is frozen onto it, with its provenance")
			if err := d.ok("", "run", "api", "-n", "payments", "--image=registry.example/api:1"); err != nil {
				return err
			}
			return d.ok("", "get", "pod", "api", "-n", "payments", "-o", `jsonpath={.metadata.annotations}{"\n"}`)
		},
		func() error {
			d.title("A late edit is refused: the pod keeps the pools it was admitted with")
			return d.fails("delete the pod and create it again", "", "annotate", "pod", "api", "-n", "payments", "--overwrite", v4+`=["general"]`)
		},
		func() error {
			d.title("A shop pod naming the firewall's pool itself is refused too")
			return d.fails("does not allow namespace", "", "run", "sneaky", "-n", "shop", "--image=registry.example/shop:1",
				"--annotations="+v4+`=["mainframe-trusted"]`)
		},
		d.nodeSteps,
		d.firewallSteps,
		func() error {
			d.title("The payments default changes: new pods follow it, the running pod does not drift")
			return d.defaultMoves("payments", "api", `["mainframe-trusted"]`, `["general"]`, "batch", "registry.example/batch:1")
		},
		d.driftSteps,
		d.releaseSteps,
	}
	return d.run(steps)
}

// defaultMoves changes namespace ns's default to newPools and shows that
// pod running keeps the oldPools it was frozen to while a new pod follows.
func (d *demo) defaultMoves(ns, running, oldPools, newPools, newPod, image string) error {
	v4 := "cni.projectcalico.org/ipv4pools"
	pools := `jsonpath={.metadata.annotations.cni\.projectcalico\.org/ipv4pools}{"\n"}`
	if err := d.ok("", "annotate", "namespace", ns, "--overwrite", v4+"="+newPools); err != nil {
		return err
	}
	if err := d.expect(oldPools, "", "get", "pod", running, "-n", ns, "-o", pools); err != nil {
		return err
	}
	d.waitForDefault(ns, newPools)
	if err := d.ok("", "run", newPod, "-n", ns, "--image="+image); err != nil {
		return err
	}
	return d.expect(newPools, "", "get", "pod", newPod, "-n", ns, "-o", pools)
}

// run runs the steps in order, stopping at the first failure or when the
// demo is interrupted.
func (d *demo) run(steps []func() error) error {
	for _, s := range steps {
		if err := d.ctx.Err(); err != nil {
			return fmt.Errorf("interrupted")
		}
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

const pools = `apiVersion: ipam.poolguard.dev/v1alpha1
kind: IPPool
metadata:
  name: mainframe-trusted
spec:
  cidr: 198.51.100.0/24
  assignmentMode: Manual
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: payments
---
apiVersion: ipam.poolguard.dev/v1alpha1
kind: IPPool
metadata:
  name: general
spec:
  cidr: 198.18.0.0/16
`
