// Package poolctl is the kubectl poolguard plugin: explain (which pools a
// pod would get, or has, and why) and drift (running pods whose pools are
// not what their namespace would give them now, unfrozen pods, addresses
// outside their pools). The decisions (ExplainCreate, ExplainNamespace,
// ExplainRunning, Drift) are pure functions over policy values, built on
// the same policy calls as the admission webhook, so the plugin cannot
// disagree with admission; Cluster reads their inputs with the user's
// credentials, and Run is the command line.
package poolctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"poolguard.dev/poolguard/policy"
)

// Run runs the plugin with args (without the program name) and returns
// the process's exit code (ExitCode): 0 nothing found, 1 found, 2 error.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := NewCommand(stdin)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	if err != nil && !errors.Is(err, ErrFound) && !errors.Is(err, ErrNothing) {
		fmt.Fprintln(stderr, "error:", err)
	}
	return ExitCode(err)
}

// options are the flags every subcommand shares.
type options struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides *clientcmd.ConfigOverrides
	output    string
	mode      string
	stdin     io.Reader
}

// NewCommand builds the command tree. The connection flags are kubectl's
// own (clientcmd's), so --kubeconfig, --context, -n and KUBECONFIG work as
// they do for kubectl.
func NewCommand(stdin io.Reader) *cobra.Command {
	o := &options{
		loading:   clientcmd.NewDefaultClientConfigLoadingRules(),
		overrides: &clientcmd.ConfigOverrides{},
		stdin:     stdin,
	}
	root := &cobra.Command{
		Use: "kubectl-poolguard",
		// kubectl runs the binary as "kubectl poolguard": help says so.
		Annotations:       map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl poolguard"},
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Short:             "Explain which IP pools pods get from poolguard, and report drift",
		Long: `kubectl poolguard explains which IP pools a pod gets, and why, with the
admission webhook's own policy code, reports pods whose pools drifted, and
prints the address lists the live export serves firewalls (export).

Exit codes: 0 nothing found (who-had: a holder found); 1 drift found
something, explain -f found that the pod would be refused, or who-had
found nobody; 2 error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.loading.ExplicitPath, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	clientcmd.BindOverrideFlags(o.overrides, pf, clientcmd.RecommendedConfigOverrideFlags(""))
	pf.StringVarP(&o.output, "output", "o", OutputTable, "output format: table, json or yaml")
	pf.StringVar(&o.mode, "mode", ModeNative, "whose IPPools to read: native (poolguard's) or calico (Calico's, for a Calico-mode install)")
	root.AddCommand(explainCommand(o), driftCommand(o), whoHadCommand(o), exportCommand(o))
	return root
}

// connect builds the Cluster and returns the namespace the user asked
// for (-n, else the kubeconfig context's, else "default") and whether it
// was given explicitly.
func (o *options) connect() (*Cluster, string, bool, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(o.loading, o.overrides)
	ns, explicit, err := cc.Namespace()
	if err != nil {
		return nil, "", false, fmt.Errorf("%w: reading the kubeconfig: %v", ErrUsage, err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", false, fmt.Errorf("%w: reading the kubeconfig: %v (set --kubeconfig or KUBECONFIG)", ErrUsage, err)
	}
	c, err := Connect(cfg, o.mode)
	return c, ns, explicit, err
}

func explainCommand(o *options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "explain (-f FILE | namespace NAME | pod NAME)",
		Short: "Explain which pools a pod would get (-f), a namespace gives, or a pod has, and why",
		Example: `  kubectl poolguard explain -f pod.yaml             # a Pod or a workload's pod template; nothing is created
  kubectl create deploy web --image=x --dry-run=client -o yaml | kubectl poolguard explain -f - -n payments
  kubectl poolguard explain namespace payments
  kubectl poolguard explain pod web-0 -n payments -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case file != "" && len(args) == 0:
				return o.explainManifest(cmd, file)
			case file == "" && len(args) == 2 && (args[0] == "namespace" || args[0] == "ns"):
				return o.explainNamespace(cmd, args[1])
			case file == "" && len(args) == 2 && (args[0] == "pod" || args[0] == "po"):
				return o.explainPod(cmd, args[1])
			}
			return fmt.Errorf("%w: want explain -f FILE, explain namespace NAME or explain pod NAME", ErrUsage)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "a Pod manifest, or a workload with a pod template (- reads stdin)")
	return cmd
}

func (o *options) explainManifest(cmd *cobra.Command, file string) error {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(o.stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	pod, err := ParseManifest(data)
	if err != nil {
		return err
	}
	c, ns, explicit, err := o.connect()
	if err != nil {
		return err
	}
	switch {
	case pod.Namespace == "":
		pod.Namespace = ns
	case explicit && pod.Namespace != ns:
		return fmt.Errorf("%w: the manifest's namespace %q does not match --namespace %q", ErrUsage, pod.Namespace, ns)
	}
	ctx := cmd.Context()
	namespace, ix, err := c.Subject(ctx, pod.Namespace)
	if err != nil {
		return err
	}
	if pod.Node != "" {
		// Bound at creation: the webhook checks the node's labels too.
		if pod.NodeLabels, err = c.NodeLabels(ctx, pod.Node); err != nil {
			return err
		}
	}
	a := ExplainCreate(pod, namespace, ix, c.Rules)
	name := pod.Name
	if name == "" {
		name = "<unnamed>"
	}
	if err := write(cmd.OutOrStdout(), o.output, a, func(w io.Writer) {
		tableAdmission(w, a, fmt.Sprintf("Pod %s/%s", pod.Namespace, name))
	}); err != nil {
		return err
	}
	if !a.Admitted {
		return fmt.Errorf("%w: the pod would be refused", ErrFound)
	}
	return nil
}

func (o *options) explainNamespace(cmd *cobra.Command, name string) error {
	c, _, _, err := o.connect()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	ns, ix, err := c.Subject(ctx, name)
	if err != nil {
		return err
	}
	r := ExplainNamespace(ns, ix, c.Rules)
	return write(cmd.OutOrStdout(), o.output, r, func(w io.Writer) { tableNamespace(w, r) })
}

func (o *options) explainPod(cmd *cobra.Command, name string) error {
	c, namespace, _, err := o.connect()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	pod, err := c.Pod(ctx, namespace, name)
	if err != nil {
		return err
	}
	ns, ix, err := c.Subject(ctx, namespace)
	if err != nil {
		return err
	}
	if pod.Node != "" {
		// Optional: without the node, nodeSelectors are noted, not checked.
		if labels, err := c.NodeLabels(ctx, pod.Node); err == nil {
			pod.NodeLabels = labels
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v; nodeSelectors are not checked\n", err)
		}
	}
	r := ExplainRunning(pod, ns, ix, c.Rules)
	return write(cmd.OutOrStdout(), o.output, r, func(w io.Writer) { tablePod(w, r) })
}

func driftCommand(o *options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "drift [-n NAMESPACE | -A]",
		Short: "List pods whose pools drifted, pods without a valid provenance, and addresses outside their pools",
		Long: `drift lists
  drift     pods whose frozen pools differ from what they would get if created
            again now (their namespace's default moved)
  unfrozen  pods without a valid provenance (admitted while the webhook was
            bypassed, in opted-out namespaces, or created before poolguard)
  address   pods with an address outside their frozen (pinned) pools
  stale     pods frozen to a pool that can no longer serve them (gone, disabled,
            not allowed any more, or another range than the one they pinned)
hostNetwork and finished pods are skipped and counted.

Exit codes: 0 nothing found, 1 something found, 2 error.`,
		Example: `  kubectl poolguard drift -A
  kubectl poolguard drift -n payments -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, namespace, _, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var namespaces map[string]policy.Namespace
			if all {
				namespace = ""
				namespaces, err = c.Namespaces(ctx)
			} else {
				var ns policy.Namespace
				ns, err = c.Namespace(ctx, namespace)
				namespaces = map[string]policy.Namespace{namespace: ns}
			}
			if err != nil {
				return err
			}
			ix, err := c.Index(ctx)
			if err != nil {
				return err
			}
			// Each page of pods is checked as it arrives: the pods are
			// never all held at once.
			d := newDrifter(namespaces, ix, c.Rules)
			if err := c.EachPod(ctx, namespace, d.add); err != nil {
				return err
			}
			r := d.report()
			if err := write(cmd.OutOrStdout(), o.output, r, func(w io.Writer) { tableDrift(w, r) }); err != nil {
				return err
			}
			if len(r.Findings) > 0 {
				return fmt.Errorf("%w: %d finding(s)", ErrFound, len(r.Findings))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "check the pods of every namespace")
	return cmd
}
