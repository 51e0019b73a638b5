package charts

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// ChartDir is poolguard's chart.
func ChartDir() string { return filepath.Join(RepoRoot(), "charts", "poolguard") }

// DefaultHelm is the helm binary the Makefile builds (make tools).
func DefaultHelm() string { return filepath.Join(RepoRoot(), "bin", "helm") }

// Release says what to render.
type Release struct {
	// Name and Namespace of the release.
	Name, Namespace string
	// Set are --set arguments (key=value), applied in order.
	Set []string
	// Values is an optional values file's content.
	Values string
	// IncludeCRDs renders the chart's crds/ too, as kubectl-apply users need.
	IncludeCRDs bool
}

// Helm runs the helm binary at path.
type Helm struct {
	// Path is the helm binary; DefaultHelm when empty.
	Path string
	// Env is added to the environment (e.g. KUBECONFIG, HELM_* dirs).
	Env []string
	// Prefix, when set, runs helm through another command, e.g.
	// nsenter into the network namespace where the API server listens.
	Prefix []string
}

// Run runs helm with args and returns its standard output; the error carries
// helm's standard error, which is what a person needs to read.
func (h Helm) Run(stdin io.Reader, args ...string) ([]byte, error) {
	path := h.Path
	if path == "" {
		path = DefaultHelm()
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("helm not found at %s: run 'make tools' first: %w", path, err)
	}
	argv := append(append(slices.Clip(h.Prefix), path), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), h.Env...)
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.Bytes(), nil
}

// args are the release arguments shared by template, install and upgrade.
func (r Release) args(chart string) (args []string, stdin io.Reader) {
	args = []string{r.Name, chart, "--namespace", r.Namespace}
	for _, s := range r.Set {
		args = append(args, "--set", s)
	}
	if r.Values != "" {
		args = append(args, "--values", "-")
		stdin = strings.NewReader(r.Values)
	}
	return args, stdin
}

// Template renders the chart (helm template) and returns the YAML stream.
func (h Helm) Template(r Release) ([]byte, error) {
	args, stdin := r.args(ChartDir())
	args = append([]string{"template"}, args...)
	if r.IncludeCRDs {
		args = append(args, "--include-crds")
	}
	return h.Run(stdin, args...)
}

// Install runs helm install (Upgrade false) or helm upgrade into the cluster
// of the Helm's KUBECONFIG, waiting for nothing: the tests decide what ready
// means.
func (h Helm) Install(r Release, upgrade bool, extra ...string) ([]byte, error) {
	args, stdin := r.args(ChartDir())
	verb := "install"
	if upgrade {
		verb = "upgrade"
	}
	args = append(append([]string{verb}, args...), extra...)
	return h.Run(stdin, args...)
}

// Decode splits a YAML stream into objects, skipping empty documents.
func Decode(stream []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// ClusterRole renders the chart for r and returns its ClusterRole name,
// for tests that run a client under the chart's own RBAC.
func (h Helm) ClusterRole(r Release, name string) (*rbacv1.ClusterRole, error) {
	out, err := h.Template(r)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(out)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && o.GetName() == name {
			var role rbacv1.ClusterRole
			if err := kruntime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				return nil, err
			}
			return &role, nil
		}
	}
	return nil, fmt.Errorf("the chart renders no ClusterRole %s for release %s", name, r.Name)
}
