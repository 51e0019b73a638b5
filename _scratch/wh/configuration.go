package webhook

import (
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// HookNamespaceSubresources names the webhook for namespace subresources,
// the one webhook the opt-out label does not take a namespace out of.
const HookNamespaceSubresources = "subresources.namespaces.ipam.poolguard.dev"

// Paths the webhook server serves.
const (
	PathMutatePod   = "/mutate-pod"
	PathValidatePod = "/validate-pod"
	// PathValidatePodSubresource serves CREATEs on pod subresources
	// (pods/binding, pods/eviction, and any added later).
	PathValidatePodSubresource = "/validate-pod-subresource"
	PathValidateNamespace      = "/validate-namespace"
	PathMutateIPPool           = "/mutate-ippool"
	PathValidateIPPool         = "/validate-ippool"
)

// ConfigOptions shape the webhook configurations.
type ConfigOptions struct {
	// Name prefixes the configuration objects' names.
	Name string
	// ServiceName and ServiceNamespace locate the webhook's Service.
	ServiceName, ServiceNamespace string
	// ServicePort is the Service's port; 443 when zero.
	ServicePort int32
	// CABundle is the CA that signed the serving certificate; empty when
	// cert-manager's CA injector fills it in.
	CABundle []byte
	// ExcludedNamespaces are never sent to the webhook, so that the cluster
	// can heal itself (kube-system) and poolguard can restart (its own
	// namespace) even when the webhook is down.
	ExcludedNamespaces []string
	// TimeoutSeconds bounds each call; 5 when zero.
	TimeoutSeconds int32
	// NodePluginUser is the node plugin's user name (its service
	// account's): its IPPool updates skip the IPPool webhooks. The
	// chart's node-plugin-pools admission policy confines them, inside
	// the API server, to adding the allocations finalizer, and a node's
	// first allocation from a pool (the webhook's own pods' at install
	// among them) must not wait on the webhook. Empty: every update is
	// sent.
	NodePluginUser string
	// Calico leaves out the webhooks for poolguard's own IPPools: in
	// Calico mode the pools are Calico's, and poolguard's CRDs are not
	// installed.
	Calico bool
}

// Match conditions are CEL evaluated inside the API server: requests they
// reject never reach the webhook, so they never wait on it and never fail
// when it is down.
var (
	// condNotHostNetwork skips pods without a pod network.
	condNotHostNetwork = admissionregistrationv1.MatchCondition{
		Name:       "not-host-network",
		Expression: `!has(object.spec.hostNetwork) || !object.spec.hostNetwork`,
	}
	// condGuardedChanged passes only updates that add, change or remove a
	// frozen annotation: every kubelet status update is filtered out.
	condGuardedChanged = admissionregistrationv1.MatchCondition{
		Name:       "frozen-annotations-changed",
		Expression: annotationsChanged(policy.GuardedKeys),
	}
	// condCarriesGuarded passes subresource CREATEs whose object carries a
	// frozen annotation: the API server copies a Binding's annotations onto
	// its pod, so a Binding could rewrite what was frozen.
	condCarriesGuarded = admissionregistrationv1.MatchCondition{
		Name:       "carries-frozen-annotations",
		Expression: hasAny("object", policy.GuardedKeys),
	}
	// condNamespaceRelevant passes namespace creates that name pools, and
	// updates (of the namespace or a subresource) that change the defaults,
	// or change the labels of a namespace that has a default: only then can
	// a label change make the default one the namespace may not use.
	condNamespaceRelevant = admissionregistrationv1.MatchCondition{
		Name: "pool-defaults-or-labels-changed",
		Expression: `request.operation == 'CREATE' ? ` + hasAny("object", policy.DefaultKeys) +
			` : (` + annotationsChanged(policy.DefaultKeys) +
			` || (` + hasAny("object", policy.DefaultKeys) +
			` && (has(object.metadata.labels) ? object.metadata.labels : {}) != (has(oldObject.metadata.labels) ? oldObject.metadata.labels : {})))`,
	}
)

// annotationsChanged is CEL that is true when an UPDATE adds, changes or
// removes any of keys.
func annotationsChanged(keys []string) string {
	return `[` + quoted(keys) + `].exists(k, ` +
		`(has(object.metadata.annotations) && k in object.metadata.annotations) != (has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations) || ` +
		`(has(object.metadata.annotations) && k in object.metadata.annotations && object.metadata.annotations[k] != oldObject.metadata.annotations[k]))`
}

// hasAny is CEL that is true when obj carries any of keys.
func hasAny(obj string, keys []string) string {
	return `(has(` + obj + `.metadata.annotations) && [` + quoted(keys) + `].exists(k, k in ` + obj + `.metadata.annotations))`
}

func quoted(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = "'" + k + "'"
	}
	return strings.Join(q, ", ")
}

// hook is what differs between poolguard's webhooks; everything else they
// share, so it is written once in admissionWebhook.
type hook struct {
	name, path string
	rules      []admissionregistrationv1.RuleWithOperations
	// namespaced webhooks get the namespaceSelector that excludes the
	// namespaces the cluster needs to heal.
	namespaced bool
	conditions []admissionregistrationv1.MatchCondition
	// reinvoke asks the API server to call a mutating webhook again when a
	// later webhook changed the object, so that the frozen result is always
	// poolguard's.
	reinvoke bool
}

// rule is one admission rule.
func rule(group string, resources []string, scope admissionregistrationv1.ScopeType, ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
	version := "v1"
	if group != "" {
		version = v1alpha1.GroupVersion.Version
	}
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: ops,
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: &scope},
	}}
}

// admissionWebhook renders a hook with the settings every poolguard webhook
// shares: fail closed, no side effects (so dry-run works), admission/v1.
func (o ConfigOptions) admissionWebhook(h hook) admissionregistrationv1.ValidatingWebhook {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	equivalent := admissionregistrationv1.Equivalent
	path, port, timeout := h.path, o.ServicePort, o.TimeoutSeconds
	w := admissionregistrationv1.ValidatingWebhook{
		Name: h.name,
		ClientConfig: admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Name: o.ServiceName, Namespace: o.ServiceNamespace, Path: &path, Port: &port},
			CABundle: o.CABundle,
		},
		Rules:                   h.rules,
		FailurePolicy:           &fail,
		MatchPolicy:             &equivalent,
		SideEffects:             &none,
		TimeoutSeconds:          &timeout,
		AdmissionReviewVersions: []string{"v1"},
		MatchConditions:         h.conditions,
	}
	if h.namespaced {
		w.NamespaceSelector = &metav1.LabelSelector{}
		if len(o.ExcludedNamespaces) > 0 {
			w.NamespaceSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{
				Key: policy.LabelNamespaceName, Operator: metav1.LabelSelectorOpNotIn, Values: o.ExcludedNamespaces,
			}}
		}
	}
	return w
}

// mutatingWebhook renders a hook as a mutating webhook.
func (o ConfigOptions) mutatingWebhook(h hook) admissionregistrationv1.MutatingWebhook {
	v := o.admissionWebhook(h)
	m := admissionregistrationv1.MutatingWebhook{
		Name: v.Name, ClientConfig: v.ClientConfig, Rules: v.Rules, FailurePolicy: v.FailurePolicy,
		MatchPolicy: v.MatchPolicy, NamespaceSelector: v.NamespaceSelector, SideEffects: v.SideEffects,
		TimeoutSeconds: v.TimeoutSeconds, AdmissionReviewVersions: v.AdmissionReviewVersions,
		MatchConditions: v.MatchConditions,
	}
	if h.reinvoke {
		ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
		m.ReinvocationPolicy = &ifNeeded
	}
	return m
}

// Configurations returns the MutatingWebhookConfiguration and
// ValidatingWebhookConfiguration that route requests to the webhook. The
// Helm chart renders the same objects; a test keeps the two in step.
func Configurations(o ConfigOptions) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 5
	}
	if o.ServicePort == 0 {
		o.ServicePort = 443
	}
	const (
		create = admissionregistrationv1.Create
		update = admissionregistrationv1.Update
		del    = admissionregistrationv1.Delete
	)
	ns, cluster := admissionregistrationv1.NamespacedScope, admissionregistrationv1.ClusterScope
	group := v1alpha1.GroupVersion.Group
	notHost := []admissionregistrationv1.MatchCondition{condNotHostNetwork}

	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			o.mutatingWebhook(hook{name: "freeze.pods.ipam.poolguard.dev", path: PathMutatePod,
				rules: rule("", []string{"pods"}, ns, create), namespaced: true, conditions: notHost, reinvoke: true}),
		},
	}
	var notPlugin []admissionregistrationv1.MatchCondition
	if o.NodePluginUser != "" {
		notPlugin = []admissionregistrationv1.MatchCondition{{
			Name:       "not-node-plugin",
			Expression: "request.userInfo.username != '" + o.NodePluginUser + "'",
		}}
	}
	if !o.Calico {
		mutating.Webhooks = append(mutating.Webhooks, o.mutatingWebhook(hook{name: "default.ippools.ipam.poolguard.dev", path: PathMutateIPPool,
			rules: rule(group, []string{"ippools"}, cluster, create, update), conditions: notPlugin}))
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			o.admissionWebhook(hook{name: "pods.ipam.poolguard.dev", path: PathValidatePod,
				rules: rule("", []string{"pods"}, ns, create), namespaced: true, conditions: notHost}),
			// Every subresource that can carry metadata (pods/status,
			// pods/ephemeralcontainers, pods/resize, and any added later).
			o.admissionWebhook(hook{name: "frozen.pods.ipam.poolguard.dev", path: PathValidatePod,
				rules: rule("", []string{"pods", "pods/*"}, ns, update), namespaced: true,
				conditions: []admissionregistrationv1.MatchCondition{condNotHostNetwork, condGuardedChanged}}),
			// CREATEs on pod subresources: a Binding's annotations are
			// copied onto its pod (pods/binding), and a subresource added
			// later may do the same.
			o.admissionWebhook(hook{name: "subresources.pods.ipam.poolguard.dev", path: PathValidatePodSubresource,
				rules: rule("", []string{"pods/*"}, ns, create), namespaced: true,
				conditions: []admissionregistrationv1.MatchCondition{condCarriesGuarded}}),
			o.admissionWebhook(hook{name: "namespaces.ipam.poolguard.dev", path: PathValidateNamespace,
				rules: rule("", []string{"namespaces"}, cluster, create, update), namespaced: true,
				conditions: []admissionregistrationv1.MatchCondition{condNamespaceRelevant}}),
			// Every subresource that can carry a namespace's metadata
			// (namespaces/status and namespaces/finalize write labels and
			// annotations too). The API server matches a subresource
			// request's namespaceSelector against the labels already
			// stored, so an opted-out namespace could drop its opt-out
			// label and set a bad default in one write: this webhook is
			// exempt from the opt-out requirement (WithNamespaceOptOut
			// leaves it alone) and the validator skips a namespace whose
			// new labels opt it out instead.
			o.admissionWebhook(hook{name: HookNamespaceSubresources, path: PathValidateNamespace,
				rules: rule("", []string{"namespaces/*"}, cluster, update), namespaced: true,
				conditions: []admissionregistrationv1.MatchCondition{condNamespaceRelevant}}),
		},
	}
	if !o.Calico {
		validating.Webhooks = append(validating.Webhooks, o.admissionWebhook(hook{name: "ippools.ipam.poolguard.dev", path: PathValidateIPPool,
			rules: rule(group, []string{"ippools"}, cluster, create, update, del), conditions: notPlugin}))
	}
	return mutating, validating
}
