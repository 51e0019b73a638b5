package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/policy"
)

// Setup is one admission configuration under test.
type Setup struct {
	// Name is short, for metrics; Label is what the table prints.
	Name, Label string
	// objects are created to install the setup.
	objects []client.Object
	// want says whether a dry-run probe pod shows the setup at work.
	want func(pod *corev1.Pod, noopCalled bool) bool
}

// Setups installs and switches between the benchmark's admission setups on
// one API server. Only one setup is installed at a time.
type Setups struct {
	Client client.Client
	Noop   *Noop
	// Probe is a pod (without pool annotations of its own) whose dry-run
	// create tells which setup the API server is running.
	Probe *corev1.Pod
	// All are the setups, in table order.
	All []*Setup
}

// Names of poolguard's pod webhooks in its configurations.
const (
	freezeWebhook = "freeze.pods.ipam.poolguard.dev"
	frozenWebhook = "frozen.pods.ipam.poolguard.dev"
)

// Names of the objects the benchmark creates besides poolguard's own
// configurations.
const (
	noopName   = "bench-noop"
	policyName = "bench-poolguard-alternative"
)

// NewSetups derives every setup from poolguard's webhook configurations as
// installed in the API server (mutating and validating, with their URLs and
// CA bundle filled in). The no-op webhook reuses them unchanged but for the
// path; the admission policies reuse their match rules and CEL conditions.
func NewSetups(mutating *admissionregistrationv1.MutatingWebhookConfiguration, validating *admissionregistrationv1.ValidatingWebhookConfiguration, c client.Client, noop *Noop, probe *corev1.Pod) (*Setups, error) {
	fresh := func(o client.Object, name string) {
		o.SetName(name)
		o.SetResourceVersion("")
		o.SetUID("")
		o.SetGeneration(0)
		o.SetCreationTimestamp(metav1.Time{})
		o.SetManagedFields(nil)
	}
	pgM, pgV := mutating.DeepCopy(), validating.DeepCopy()
	fresh(pgM, mutating.Name)
	fresh(pgV, validating.Name)

	noopM, noopV := mutating.DeepCopy(), validating.DeepCopy()
	fresh(noopM, noopName)
	fresh(noopV, noopName)
	for i := range noopM.Webhooks {
		if err := repath(&noopM.Webhooks[i].ClientConfig, PathNoopMutate); err != nil {
			return nil, err
		}
	}
	for i := range noopV.Webhooks {
		if err := repath(&noopV.Webhooks[i].ClientConfig, PathNoopValidate); err != nil {
			return nil, err
		}
	}

	// The patching no-op: the same, but the pod freeze webhook answers with
	// a constant patch.
	patchM := noopM.DeepCopy()
	fresh(patchM, noopName+"-patch")
	for i := range patchM.Webhooks {
		if patchM.Webhooks[i].Name == freezeWebhook {
			if err := repath(&patchM.Webhooks[i].ClientConfig, PathNoopPatch); err != nil {
				return nil, err
			}
		}
	}

	freeze, frozen, err := podWebhooks(mutating, validating)
	if err != nil {
		return nil, err
	}
	policies := admissionPolicies(freeze, frozen)

	provenance := func(p *corev1.Pod) bool { _, ok := p.Annotations[policy.AnnotationProvenance]; return ok }
	copied := func(p *corev1.Pod) bool { _, ok := p.Annotations[policy.AnnotationIPv4Pools]; return ok }
	patched := func(p *corev1.Pod) bool { _, ok := p.Annotations[NoopAnnotation]; return ok }
	return &Setups{Client: c, Noop: noop, Probe: probe, All: []*Setup{{
		Name: "none", Label: "(a) no webhook",
		want: func(p *corev1.Pod, called bool) bool { return !called && !provenance(p) && !copied(p) },
	}, {
		Name: "noop", Label: "(b) no-op TLS webhook", objects: []client.Object{noopM, noopV},
		want: func(p *corev1.Pod, called bool) bool { return called && !provenance(p) && !copied(p) && !patched(p) },
	}, {
		Name: "noop-patch", Label: "(b') no-op TLS webhook, 1-key patch", objects: []client.Object{patchM, noopV},
		want: func(p *corev1.Pod, called bool) bool { return called && patched(p) },
	}, {
		Name: "poolguard", Label: "(c) poolguard webhook", objects: []client.Object{pgM, pgV},
		want: func(p *corev1.Pod, called bool) bool { return !called && provenance(p) },
	}, {
		Name: "policies", Label: "(d) MutatingAdmissionPolicy+VAP", objects: policies,
		want: func(p *corev1.Pod, called bool) bool { return !called && !provenance(p) && copied(p) },
	}}}, nil
}

// repath points a webhook's URL at another path of the same server.
func repath(cc *admissionregistrationv1.WebhookClientConfig, path string) error {
	if cc.URL == nil {
		return errors.New("webhook configuration has no URL: expected envtest's local serving URL")
	}
	u, err := url.Parse(*cc.URL)
	if err != nil {
		return err
	}
	u.Path = path
	cc.URL = ptr.To(u.String())
	return nil
}

// podWebhooks finds poolguard's pod CREATE mutating webhook and its pod
// UPDATE validating webhook, whose rules the admission policies copy.
func podWebhooks(m *admissionregistrationv1.MutatingWebhookConfiguration, v *admissionregistrationv1.ValidatingWebhookConfiguration) (freeze admissionregistrationv1.MutatingWebhook, frozen admissionregistrationv1.ValidatingWebhook, err error) {
	var okM, okV bool
	for _, w := range m.Webhooks {
		if w.Name == freezeWebhook {
			freeze, okM = w, true
		}
	}
	for _, w := range v.Webhooks {
		if w.Name == frozenWebhook {
			frozen, okV = w, true
		}
	}
	if !okM || !okV {
		return freeze, frozen, errors.New("poolguard's pod webhooks not found in its configurations: were they renamed?")
	}
	return freeze, frozen, nil
}

// admissionPolicies is Kubernetes' in-process alternative to poolguard's pod
// webhooks, matched exactly as they are: a MutatingAdmissionPolicy that
// copies the namespace's pool annotations onto a pod that names none, and a
// ValidatingAdmissionPolicy that refuses updates changing them. It does far
// less than poolguard (no pool lookup, no authorization, no provenance
// check), which is the point of the comparison.
func admissionPolicies(freeze admissionregistrationv1.MutatingWebhook, frozen admissionregistrationv1.ValidatingWebhook) []client.Object {
	named := func(rs []admissionregistrationv1.RuleWithOperations) []admissionregistrationv1.NamedRuleWithOperations {
		out := make([]admissionregistrationv1.NamedRuleWithOperations, len(rs))
		for i, r := range rs {
			out[i] = admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: r}
		}
		return out
	}
	var mutations []admissionregistrationv1.Mutation
	for _, fam := range policy.Families {
		k := fam.AnnotationKey()
		mutations = append(mutations, admissionregistrationv1.Mutation{
			PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
			ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: fmt.Sprintf(
				`!(has(object.metadata.annotations) && '%[1]s' in object.metadata.annotations) && has(namespaceObject.metadata.annotations) && '%[1]s' in namespaceObject.metadata.annotations`+
					` ? Object{metadata: Object.metadata{annotations: {'%[1]s': namespaceObject.metadata.annotations['%[1]s']}}} : Object{}`, k)},
		})
	}
	var guardedChanged string
	var conds []admissionregistrationv1.MatchCondition
	for _, c := range frozen.MatchConditions {
		if c.Name == "frozen-annotations-changed" {
			guardedChanged = c.Expression
		} else {
			conds = append(conds, c)
		}
	}
	m := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: freeze.NamespaceSelector,
				ResourceRules:     named(freeze.Rules),
				MatchPolicy:       freeze.MatchPolicy,
			},
			MatchConditions:    freeze.MatchConditions,
			Mutations:          mutations,
			FailurePolicy:      freeze.FailurePolicy,
			ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
		},
	}
	mb := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: policyName},
	}
	v := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: frozen.NamespaceSelector,
				ResourceRules:     named(frozen.Rules),
				MatchPolicy:       frozen.MatchPolicy,
			},
			MatchConditions: conds,
			Validations: []admissionregistrationv1.Validation{{
				Expression: "!(" + guardedChanged + ")",
				Message:    fmt.Sprintf(policy.MsgImmutable, policy.AnnotationProvenance),
			}},
			FailurePolicy: frozen.FailurePolicy,
		},
	}
	vb := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policyName},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policyName, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	return []client.Object{m, mb, v, vb}
}

// Switch removes every setup's objects, installs s's, and waits until the
// API server visibly runs s: a dry-run probe pod must show s at work (and
// nothing else) three times in a row.
func (ss *Setups) Switch(ctx context.Context, s *Setup) error {
	for _, other := range ss.All {
		for _, o := range other.objects {
			if err := ss.Client.Delete(ctx, o.DeepCopyObject().(client.Object)); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("removing %T %s: %w", o, o.GetName(), err)
			}
		}
	}
	if err := ss.waitFor(ctx, ss.All[0]); err != nil {
		return err
	}
	for _, o := range s.objects {
		if err := ss.Client.Create(ctx, o.DeepCopyObject().(client.Object)); err != nil {
			return fmt.Errorf("installing %T %s: %w", o, o.GetName(), err)
		}
	}
	return ss.waitFor(ctx, s)
}

func (ss *Setups) waitFor(ctx context.Context, s *Setup) error {
	deadline := time.Now().Add(60 * time.Second)
	good := 0
	var last error
	for good < 3 {
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not switch to setup %q within a minute (last probe: %v)", s.Name, last)
		}
		before := ss.Noop.Calls()
		p := ss.Probe.DeepCopy()
		last = ss.Client.Create(ctx, p, client.DryRunAll)
		if last == nil && s.want(p, ss.Noop.Calls() > before) {
			good++
			continue
		}
		if last == nil {
			last = fmt.Errorf("probe pod came back with annotations %v", p.Annotations)
		}
		good = 0
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
