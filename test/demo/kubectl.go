package main

import (
	"fmt"
	"os/exec"
	"strings"
	"time"
)

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
// pool, just applied (a second or less).
func (d *demo) waitForWebhookCache(pool string) {
	for i := 0; i < 100; i++ {
		out, _ := exec.CommandContext(d.ctx, d.kubectlPath, "--kubeconfig", d.kubeconfig, "run", "cache-probe", "-n", "default",
			"--image=x", "--dry-run=server", "--annotations=cni.projectcalico.org/ipv4pools=[\""+pool+"\"]", "-o", "name").CombinedOutput()
		if !strings.Contains(string(out), "does not exist") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForDefault waits, silently, until the webhook's informer knows the
// namespace's new default: a dry-run pod is frozen onto it.
func (d *demo) waitForDefault(ns, want string) {
	for i := 0; i < 200; i++ {
		out, _ := exec.CommandContext(d.ctx, d.kubectlPath, "--kubeconfig", d.kubeconfig, "run", "cache-probe", "-n", ns,
			"--image=x", "--dry-run=server", "-o", `jsonpath={.metadata.annotations.cni\.projectcalico\.org/ipv4pools}`).CombinedOutput()
		if strings.TrimSpace(string(out)) == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForRefusal waits, silently, until a dry-run pod in ns is refused
// with a message containing want.
func (d *demo) waitForRefusal(ns, want string) {
	for i := 0; i < 200; i++ {
		out, _ := exec.CommandContext(d.ctx, d.kubectlPath, "--kubeconfig", d.kubeconfig, "run", "cache-probe", "-n", ns,
			"--image=x", "--dry-run=server", "-o", "name").CombinedOutput()
		if strings.Contains(string(out), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
