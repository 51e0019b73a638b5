package main

import (
	"context"
	"fmt"

	"poolguard.dev/poolguard/test/chartwebhook"
)

// calicoStory tells the Calico-mode story: the pools are Calico's, and
// poolguard closes at admission what Calico's IPAM leaves open.
func (d *demo) calicoStory() error {
	v4 := "cni.projectcalico.org/ipv4pools"
	annotations := `jsonpath={.metadata.annotations}{"\n"}`
	steps := []func() error{
		func() error {
			d.title("The chart's admission policies, which the API server enforces itself (helm install creates them)")
			objs, err := chartwebhook.Policies()
			if err != nil {
				return err
			}
			for _, o := range objs {
				if err := d.env.Client.Create(context.Background(), o); err != nil {
					return err
				}
				fmt.Printf("  %s %s created\n", o.GetKind(), o.GetName())
			}
			return nil
		},
		func() error {
			d.title("Calico's IPPools, exactly as the security team already has them (crd.projectcalico.org/v1)",
				"mainframe-trusted is the range the legacy firewall trusts, Manual, and its namespaceSelector says only payments may use it:",
				"Calico's IPAM ignores that selector for a pool a pod names. poolguard reads these objects; there is no second copy.")
			if err := d.ok(calicoPools, "apply", "-f", "-"); err != nil {
				return err
			}
			return d.ok("", "get", "ippools.crd.projectcalico.org", "-o", "custom-columns=NAME:.metadata.name,CIDR:.spec.cidr,MODE:.spec.assignmentMode,NAMESPACES:.spec.namespaceSelector")
		},
		func() error {
			d.title("Namespaces; the payments owner sets a default")
			for _, ns := range []string{"payments", "shop"} {
				if err := d.ok("", "create", "namespace", ns); err != nil {
					return err
				}
			}
			d.waitForWebhookCache("default-ipv4-ippool")
			return d.ok("", "annotate", "namespace", "payments", v4+`=["mainframe-trusted"]`)
		},
		func() error {
			d.title("What Calico alone would have allowed is refused at admission",
				"The shop team naming the firewall's pool (Calico skips the pool's namespaceSelector):")
			if err := d.fails("does not allow namespace", "", "run", "sneaky", "-n", "shop", "--image=registry.example/shop:1",
				"--annotations="+v4+`=["mainframe-trusted"]`); err != nil {
				return err
			}
			say("The same pool named by its CIDR:")
			if err := d.fails("does not allow namespace", "", "run", "sneaky", "-n", "shop", "--image=registry.example/shop:1",
				"--annotations="+v4+`=["198.51.100.0/24"]`); err != nil {
				return err
			}
			say("A typo (Calico would leave the pod in ContainerCreating):")
			return d.fails("does not exist", "", "run", "typo", "-n", "shop", "--image=registry.example/shop:1",
				"--annotations="+v4+`=["mainframe-trustd"]`)
		},
		func() error {
			d.title("A shop pod that names no pool is frozen to the default pools of its admission, as an explicit list",
				"Calico's CNI reads the pod's annotation first, so the namespace's annotation can no longer move it.")
			if err := d.ok("", "run", "web", "-n", "shop", "--image=registry.example/shop:1"); err != nil {
				return err
			}
			return d.ok("", "get", "pod", "web", "-n", "shop", "-o", annotations)
		},
		func() error {
			d.title("The shop namespace later gains a default: the running pod keeps its pools, new pods follow")
			return d.defaultMoves("shop", "web", `["default-ipv4-ippool"]`, `["shop-pool"]`, "web2", "registry.example/shop:1")
		},
		func() error {
			d.title("No back door: in kube-system, which no webhook sees, the API server's own policy refuses the firewall's pool")
			return d.fails("calico.allowedPoolAnnotations", "", "run", "sneaky", "-n", "kube-system", "--image=registry.example/x:1",
				"--annotations="+v4+`=["mainframe-trusted"]`)
		},
		func() error {
			d.title("The security team disables the pool in Calico: the next pod naming it is refused at once, not on its node")
			if err := d.ok("", "patch", "ippools.crd.projectcalico.org", "mainframe-trusted", "--type=merge", "-p", `{"spec":{"disabled":true}}`); err != nil {
				return err
			}
			d.waitForRefusal("payments", "disabled")
			return d.fails("disabled", "", "run", "api", "-n", "payments", "--image=registry.example/api:1")
		},
	}
	return d.run(steps)
}

const calicoPools = `apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: mainframe-trusted
spec:
  cidr: 198.51.100.0/24
  assignmentMode: Manual
  namespaceSelector: kubernetes.io/metadata.name == 'payments'
  ipipMode: Never
  natOutgoing: false
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 198.18.0.0/16
  blockSize: 26
  ipipMode: Always
  natOutgoing: true
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: shop-pool
spec:
  cidr: 198.19.0.0/24
  assignmentMode: Manual
  namespaceSelector: kubernetes.io/metadata.name == 'shop'
`
