// Command demo tells poolguard's story on a local control plane, with real
// kubectl commands against a real kube-apiserver that calls poolguard's
// webhook over TLS. Every step checks its outcome, so the demo fails loudly
// if the product does not behave as told. It removes everything it started,
// also when interrupted or when a step fails.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/test/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo complete: everything it started has been stopped and removed.")
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	say("Starting a local control plane: kube-apiserver and etcd built from the Go module proxy into bin/,")
	say("with poolguard's CRDs and its admission webhook served over TLS behind real webhook configurations.")
	env, err := harness.Start(harness.Options{Webhook: true})
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	dir, err := os.MkdirTemp("", "poolguard-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	user, err := env.Env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	d := &demo{ctx: ctx, kubeconfig: filepath.Join(dir, "kubeconfig"), kubectlPath: filepath.Join(harness.BinDir(), "kubectl")}
	if err := os.WriteFile(d.kubeconfig, kc, 0o600); err != nil {
		return err
	}
	return d.story()
}

// demo runs kubectl against the local control plane and narrates.
type demo struct {
	ctx         context.Context
	kubeconfig  string
	kubectlPath string
	step        int
}

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
			d.waitForWebhookCache()
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
		func() error {
			d.title("The payments default changes: new pods follow it, the running pod does not drift")
			if err := d.ok("", "annotate", "namespace", "payments", "--overwrite", v4+`=["general"]`); err != nil {
				return err
			}
			if err := d.expect(`["mainframe-trusted"]`, "", "get", "pod", "api", "-n", "payments", "-o", `jsonpath={.metadata.annotations.cni\.projectcalico\.org/ipv4pools}{"\n"}`); err != nil {
				return err
			}
			time.Sleep(500 * time.Millisecond) // let the webhook's cache see the new default
			if err := d.ok("", "run", "batch", "-n", "payments", "--image=registry.example/batch:1"); err != nil {
				return err
			}
			return d.expect(`["general"]`, "", "get", "pod", "batch", "-n", "payments", "-o", `jsonpath={.metadata.annotations.cni\.projectcalico\.org/ipv4pools}{"\n"}`)
		},
	}
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

func say(lines ...string) {
	for _, l := range lines {
		fmt.Println(l)
	}
}

func (d *demo) title(t string, lines ...string) {
	d.step++
	fmt.Printf("\n== %d. %s\n", d.step, t)
	say(lines...)
}

// kubectl runs one kubectl command, printing it and its output.
func (d *demo) kubectl(stdin string, args ...string) (string, error) {
	shown := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, `"[]{} `) {
			a = "'" + a + "'"
		}
		shown[i] = a
	}
	fmt.Printf("$ kubectl %s\n", strings.Join(shown, " "))
	cmd := exec.CommandContext(d.ctx, d.kubectlPath, append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("  " + l)
	}
	return string(out), err
}

// ok runs a command that must succeed.
func (d *demo) ok(stdin string, args ...string) error {
	if _, err := d.kubectl(stdin, args...); err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// expect runs a command that must succeed and print want.
func (d *demo) expect(want, stdin string, args ...string) error {
	out, err := d.kubectl(stdin, args...)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != want {
		return fmt.Errorf("kubectl %s printed %q, want %q", strings.Join(args, " "), out, want)
	}
	fmt.Println("  -> as expected")
	return nil
}

// fails runs a command that must be refused with a message containing want.
func (d *demo) fails(want, stdin string, args ...string) error {
	out, err := d.kubectl(stdin, args...)
	if err == nil {
		return fmt.Errorf("kubectl %s succeeded; poolguard should have refused it", strings.Join(args, " "))
	}
	if !strings.Contains(out, want) {
		return fmt.Errorf("kubectl %s was refused, but not with %q", strings.Join(args, " "), want)
	}
	fmt.Println("  -> refused, as it should be")
	return nil
}

// waitForWebhookCache waits, silently, until the webhook's informer knows
// the pools just applied (a second or less).
func (d *demo) waitForWebhookCache() {
	for i := 0; i < 100; i++ {
		out, _ := exec.CommandContext(d.ctx, d.kubectlPath, "--kubeconfig", d.kubeconfig, "run", "cache-probe", "-n", "default",
			"--image=x", "--dry-run=server", "--annotations=cni.projectcalico.org/ipv4pools=[\"general\"]", "-o", "name").CombinedOutput()
		if !strings.Contains(string(out), "does not exist") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
