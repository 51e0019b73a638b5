// Command demo tells poolguard's story on a local control plane, with real
// kubectl commands against a real kube-apiserver that calls poolguard's
// webhook over TLS, then on a node made of network namespaces: pods get
// their addresses from the reference bridge plugin chained with
// poolguard-ipam, and a legacy firewall (nftables in its own network
// namespace) lets the trusted pool through and refuses the rest. Every step
// checks its outcome, so the demo fails loudly if the product does not
// behave as told. It removes everything it started, also when interrupted
// or when a step fails, and checks that it did.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"poolguard.dev/poolguard/pools/calico"
	"poolguard.dev/poolguard/test/chartwebhook"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
	"poolguard.dev/poolguard/webhook"
)

// errInterrupted marks a run stopped by Ctrl-C or SIGTERM.
var errInterrupted = errors.New("interrupted")

func main() {
	if err := run(); err != nil {
		if errors.Is(err, errInterrupted) {
			fmt.Fprintln(os.Stderr, "\ndemo interrupted; everything it started has been stopped and removed.")
		} else {
			fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		}
		os.Exit(1)
	}
	fmt.Println("\ndemo complete: everything it started has been stopped and removed (checked: no network namespace, interface, nftables table or process left).")
}

func run() (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the demo creates network namespaces, veths and nftables rules: run it as root (sudo make demo)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", errInterrupted, err)
		}
	}()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	prefix := "pgdemo-" + hex.EncodeToString(b) + "-"
	if err := netlab.CheckRootFree(append(demoRanges(), netlab.LinkRanges()...)...); err != nil {
		return err
	}

	calicoMode := flag.Bool("calico", false, "tell the Calico-mode story: poolguard guarding Calico's own IPPools")
	flag.Parse()
	if *calicoMode {
		// The chart as a Calico user installs it.
		chartwebhook.Release.Set = []string{"mode=calico"}
		say("Starting a local control plane: kube-apiserver and etcd built from the Go module proxy into bin/, serving Calico's IPPool")
		say("(crd.projectcalico.org/v1, Calico's classic datastore), with the Helm chart's Calico-mode webhook configurations and admission")
		say("policies; then poolguard-webhook --mode=calico, with the args of the chart's Deployment, serving TLS.")
	} else {
		say("Starting a local control plane: kube-apiserver and etcd built from the Go module proxy into bin/, with poolguard's CRDs")
		say("and the Helm chart's webhook configurations; then poolguard-webhook, with the args of the chart's Deployment, serving TLS.")
	}
	opts, err := chartwebhook.HarnessOptions()
	if err != nil {
		return err
	}
	if *calicoMode {
		opts.Mode = webhook.ModeCalico
		opts.ExtraCRDDirs = []string{harness.CalicoCRDDir(calico.GroupVersionCRDv1.Group)}
	}
	env, err := harness.Start(opts)
	if err != nil {
		return err
	}
	d := &demo{ctx: ctx, env: env, prefix: prefix, kubectlPath: filepath.Join(harness.BinDir(), "kubectl")}
	// Tear down in order, whatever happened: the lab, the control plane,
	// the files; then check that nothing is left.
	defer func() {
		var errs []error
		if d.lab != nil {
			errs = append(errs, d.lab.Close())
		}
		if d.webhook != nil {
			errs = append(errs, d.webhook.Stop())
		}
		errs = append(errs, env.Stop())
		if d.dir != "" {
			errs = append(errs, os.RemoveAll(d.dir))
		}
		errs = append(errs, netlab.Leftovers(prefix))
		err = errors.Join(append([]error{err}, errs...)...)
	}()
	if d.dir, err = os.MkdirTemp("", prefix); err != nil {
		return err
	}
	user, err := env.Env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	d.kubeconfig = filepath.Join(d.dir, "kubeconfig")
	if err := os.WriteFile(d.kubeconfig, kc, 0o600); err != nil {
		return err
	}
	// The webhook runs its allocator controllers (--allocator-controllers:
	// IPPool status, garbage collection) too, as in the chart.
	d.webhook, err = chartwebhook.Start(ctx, env, kc, d.dir, prefix+"webhook")
	if err != nil {
		return err
	}
	fmt.Printf("$ poolguard-webhook %s   (in network namespace %swebhook)\n", strings.Join(d.webhook.Args, " "), prefix)
	if *calicoMode {
		return d.calicoStory()
	}
	return d.story()
}

// demo runs kubectl against the local control plane and commands on the
// lab's node, and narrates.
type demo struct {
	ctx         context.Context
	env         *harness.Env
	prefix      string
	dir         string
	kubeconfig  string
	kubectlPath string
	step        int

	webhook *chartwebhook.Webhook
	lab     *netlab.Lab
	// boxes are the pods' sandboxes, by "namespace/name".
	boxes map[string]*netlab.Sandbox
}
