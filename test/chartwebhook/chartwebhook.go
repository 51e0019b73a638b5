// Package chartwebhook runs the poolguard-webhook binary as the Helm
// chart's Deployment runs it: the container's exact args and environment
// from `helm template`, the serving certificate laid out as the chart's
// Secret volume mounts it (tls.crt, tls.key, ca.crt), and a network
// namespace of its own so that it binds the chart's fixed ports as a pod
// would. The API server reaches it through the webhook configurations the
// harness registers (harness.Options.ExternalWebhook).
package chartwebhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// Release is the release the chart is rendered as; its namespace is where
// the webhook's leader-election lease lives, as in a cluster.
var Release = charts.Release{Name: "poolguard", Namespace: harness.ServiceNamespace}

// Webhook is the running binary.
type Webhook struct {
	*netlab.Service
	// Args are the args it runs with (the Deployment's, --cert-dir
	// pointing at the stand-in for the certificate volume).
	Args []string
}

// Start renders the chart, builds poolguard-webhook into dir and runs it in
// network namespace netns (which must carry the caller's prefix) with
// kubeconfig, against env (started with ExternalWebhook). Stop the
// result on every path.
func Start(ctx context.Context, env *harness.Env, kubeconfig []byte, dir, netns string) (*Webhook, error) {
	dep, err := deployment()
	if err != nil {
		return nil, err
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	bin := filepath.Join(dir, "poolguard-webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "poolguard.dev/poolguard/webhook/cmd/poolguard-webhook").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building poolguard-webhook: %w: %s", err, out)
	}
	certDir, err := certVolume(env.CertDir, env.Env.WebhookInstallOptions.LocalServingCAData, dir)
	if err != nil {
		return nil, err
	}
	kcPath := filepath.Join(dir, "webhook-kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	args, procEnv, err := StandIn(dep, certDir, kcPath)
	if err != nil {
		return nil, err
	}
	ports := map[string]int{}
	for _, p := range ctr.Ports {
		ports[p.Name] = int(p.ContainerPort)
	}
	probe := ctr.ReadinessProbe
	if probe == nil || probe.HTTPGet == nil || ports["webhook"] == 0 || ports[probe.HTTPGet.Port.String()] == 0 {
		return nil, errors.New("the chart's container has no webhook port or HTTP readiness probe on a named port")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: dep.Namespace}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	svc, err := netlab.StartService(netlab.ServiceConfig{
		Netns:     netns,
		APIServer: apiServerAddr(env),
		Expose:    map[string]int{env.WebhookAddr: ports["webhook"]},
		Command:   append([]string{bin}, args...),
		Env:       procEnv,
	})
	if err != nil {
		return nil, err
	}
	w := &Webhook{Service: svc, Args: args}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", ports[probe.HTTPGet.Port.String()], probe.HTTPGet.Path)
	if err := svc.WaitHTTP(url, 90*time.Second); err != nil {
		return nil, errors.Join(err, svc.Stop())
	}
	return w, nil
}

// StandIn returns the args and environment with which a local process
// stands in for the chart's webhook container: --cert-dir pointed at
// certDir in place of the certificate volume's mount path, the downward
// API's namespace and pod name filled in, KUBECONFIG set.
func StandIn(dep *appsv1.Deployment, certDir, kubeconfig string) (args, env []string, err error) {
	ctr := dep.Spec.Template.Spec.Containers[0]
	mount := ""
	for _, m := range ctr.VolumeMounts {
		if m.Name == "certs" {
			mount = m.MountPath
		}
	}
	for _, a := range ctr.Args {
		if mount != "" && strings.HasPrefix(a, "--cert-dir=") {
			if a != "--cert-dir="+mount {
				return nil, nil, fmt.Errorf("%s is not the certificate volume's mount path %q", a, mount)
			}
			a = "--cert-dir=" + certDir
		}
		args = append(args, a)
	}
	env = []string{"KUBECONFIG=" + kubeconfig, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, e := range ctr.Env {
		ref := e.ValueFrom
		switch {
		case ref == nil:
			env = append(env, e.Name+"="+e.Value)
		case ref.FieldRef != nil && ref.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+dep.Namespace)
		case ref.FieldRef != nil && ref.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+dep.Name+"-0")
		case ref.ResourceFieldRef != nil && ref.ResourceFieldRef.Resource == "limits.memory":
			env = append(env, e.Name+"="+strconv.FormatInt(ctr.Resources.Limits.Memory().Value(), 10))
		default:
			return nil, nil, fmt.Errorf("cannot stand in for env %s of the chart's container", e.Name)
		}
	}
	return args, env, nil
}

// Configurations are the chart's webhook configurations as helm renders
// them, for harness.Options: the harness points their Service references
// at Env.WebhookAddr and injects the CA, as cert-manager's CA injector
// would.
func Configurations() (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	objs, err := render()
	if err != nil {
		return nil, nil, err
	}
	var m *admissionregistrationv1.MutatingWebhookConfiguration
	var v *admissionregistrationv1.ValidatingWebhookConfiguration
	for _, o := range objs {
		switch o.GetKind() {
		case "MutatingWebhookConfiguration":
			m = &admissionregistrationv1.MutatingWebhookConfiguration{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, m)
		case "ValidatingWebhookConfiguration":
			v = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if m == nil || v == nil {
		return nil, nil, errors.New("the chart renders no mutating or no validating webhook configuration")
	}
	return m, v, nil
}

// Policies returns the ValidatingAdmissionPolicies and their bindings the
// chart renders, for a control plane that should enforce them as a helm
// install would.
func Policies() ([]*unstructured.Unstructured, error) {
	objs, err := render()
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if k := o.GetKind(); k == "ValidatingAdmissionPolicy" || k == "ValidatingAdmissionPolicyBinding" {
			out = append(out, o)
		}
	}
	return out, nil
}

// render renders the chart with Release's values.
func render() ([]*unstructured.Unstructured, error) {
	out, err := charts.Helm{Path: filepath.Join(harness.BinDir(), "helm")}.Template(Release)
	if err != nil {
		return nil, err
	}
	return charts.Decode(out)
}

// deployment returns the chart's webhook Deployment.
func deployment() (*appsv1.Deployment, error) {
	objs, err := render()
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
			return nil, err
		}
		if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 && len(cs[0].Command) > 0 && strings.HasSuffix(cs[0].Command[0], "/poolguard-webhook") {
			return &d, nil
		}
	}
	return nil, errors.New("the chart renders no poolguard webhook Deployment")
}

// certVolume lays the serving certificate out as the chart's Secret
// volume does: tls.crt, tls.key and ca.crt (cert-manager's keys).
func certVolume(src string, ca []byte, dir string) (string, error) {
	dst := filepath.Join(dir, "certs")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", err
	}
	for from, to := range map[string]string{"tls.crt": "tls.crt", "tls.key": "tls.key"} {
		b, err := os.ReadFile(filepath.Join(src, from))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dst, to), b, 0o600); err != nil {
			return "", err
		}
	}
	// envtest's CA signed the serving certificate; the configurations'
	// caBundle carries it, as cert-manager's CA injector would.
	return dst, os.WriteFile(filepath.Join(dst, "ca.crt"), ca, 0o600)
}

// apiServerAddr is the API server's host:port.
func apiServerAddr(env *harness.Env) string {
	h := env.Config.Host
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	return strings.TrimSuffix(h, "/")
}

// HarnessOptions start a control plane for Start: the chart's webhook
// configurations registered, no in-process webhook.
func HarnessOptions() (harness.Options, error) {
	m, v, err := Configurations()
	if err != nil {
		return harness.Options{}, err
	}
	return harness.Options{ExternalWebhook: true, Mutating: m, Validating: v}, nil
}

// Deployment is the chart's webhook Deployment as helm renders it with
// Release's values, for callers that run the binary themselves (StandIn).
func Deployment() (*appsv1.Deployment, error) { return deployment() }

// CertVolume lays env's serving certificate out in dir as the chart's
// Secret volume mounts it, and returns the directory for --cert-dir.
func CertVolume(env *harness.Env, dir string) (string, error) {
	return certVolume(env.CertDir, env.Env.WebhookInstallOptions.LocalServingCAData, dir)
}
