package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"poolguard.dev/poolguard/policy"
	"poolguard.dev/poolguard/pools"
	"poolguard.dev/poolguard/pools/calico"
	"poolguard.dev/poolguard/test/bench"
	"poolguard.dev/poolguard/webhook"
)

// staticSource serves one prebuilt index: the benchmark's in-memory
// stand-in for an informer, the same for both modes.
type staticSource struct{ ix *policy.Index }

func (s staticSource) Snapshot(context.Context) (*policy.Index, error) { return s.ix, nil }

// BenchmarkPodHandlersCalico compares, in one run, the pod handlers in
// native mode and in Calico mode over the same world: the same pools as
// poolguard's IPPools and as Calico's (selectors in Calico's language),
// each served from an in-memory index, the namespaces from the webhook's
// informer. The aim (issue 13) is Calico mode as fast as native.
func BenchmarkPodHandlersCalico(b *testing.B) {
	world := bench.NewWorld("hc-")
	ctx := context.Background()
	if err := world.Create(ctx, env.Client); err != nil {
		b.Fatal(err)
	}
	defer world.Delete(ctx, env.Client)
	mutate, _ := podReviews(b, world, 32)

	var native, cal []policy.Pool
	for _, p := range world.Pools {
		np, err := pools.FromIPPool(p)
		if err != nil {
			b.Fatal(err)
		}
		native = append(native, np)
		cp, err := calico.FromUnstructured(asCalico(p.Name, p.Spec.CIDR, string(p.Spec.AssignmentMode), p.Spec.NamespaceSelector))
		if err != nil || cp.Invalid != nil {
			b.Fatalf("pool %s as Calico's: %v %v", p.Name, err, cp.Invalid)
		}
		cal = append(cal, cp)
	}
	lookup := webhook.Lookup{Cache: env.Manager.GetCache(), Live: env.Manager.GetAPIReader()}
	enforcer := webhook.Enforcer{Mode: webhook.Enforce}
	for _, mode := range []struct {
		name  string
		index *policy.Index
		rules policy.Rules
	}{{"native", policy.NewIndex(native), policy.Rules{}}, {"calico", policy.NewIndex(cal), policy.Rules{PinDefaults: true}}} {
		hs := webhook.HandlersWith(env.Manager.GetScheme(), lookup, staticSource{mode.index}, enforcer, mode.rules)
		mux := muxOf(hs)
		// The validating call sees the pod as this mode's freeze left it.
		var validate [][]byte
		for i, body := range mutate {
			validate = append(validate, frozenReview(b, mux, i, body))
		}
		b.Run("mutate-"+mode.name, func(b *testing.B) { benchHandler(b, mux, webhook.PathMutatePod, mutate, true) })
		b.Run("validate-"+mode.name, func(b *testing.B) { benchHandler(b, mux, webhook.PathValidatePod, validate, false) })
	}
}

// asCalico writes one of the world's pools as a Calico IPPool.
func asCalico(name, cidr, mode string, sel *metav1.LabelSelector) *unstructured.Unstructured {
	spec := map[string]any{"cidr": cidr}
	if mode != "" {
		spec["assignmentMode"] = mode
	}
	if sel != nil {
		var terms []string
		for k, v := range sel.MatchLabels {
			terms = append(terms, fmt.Sprintf("%s == '%s'", k, v))
		}
		for _, r := range sel.MatchExpressions {
			terms = append(terms, fmt.Sprintf("%s in {'%s'}", r.Key, strings.Join(r.Values, "', '")))
		}
		sort.Strings(terms)
		spec["namespaceSelector"] = strings.Join(terms, " && ")
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(calico.GroupVersionCRDv1.WithKind(calico.IPPoolKind))
	u.SetName(name)
	return u
}

// muxOf serves handlers by path, as the webhook server does.
func muxOf(hs map[string]*admission.Webhook) http.Handler {
	mux := http.NewServeMux()
	for path, h := range hs {
		mux.Handle(path, h)
	}
	return mux
}

// frozenReview runs the mutating call of body and returns the validating
// call's review of the pod it produces.
func frozenReview(b *testing.B, mux http.Handler, i int, body []byte) []byte {
	b.Helper()
	var in, out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err != nil {
		b.Fatal(err)
	}
	rec := serveReview(mux, webhook.PathMutatePod, body)
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed {
		b.Fatalf("mutating call answered %d %s", rec.Code, rec.Body)
	}
	raw := in.Request.Object.Raw
	if len(out.Response.Patch) > 0 {
		patch, err := jsonpatch.DecodePatch(out.Response.Patch)
		if err != nil {
			b.Fatal(err)
		}
		if raw, err = patch.Apply(raw); err != nil {
			b.Fatal(err)
		}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		b.Fatal(err)
	}
	return podReview(b, i, &pod)
}
