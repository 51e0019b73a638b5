package bench

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"

	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Paths of the no-op webhook, served by the same server as poolguard's.
const (
	PathNoopMutate   = "/noop-mutate"
	PathNoopValidate = "/noop-validate"
	PathNoopPatch    = "/noop-patch"
)

// NoopAnnotation is what the patching no-op adds to every pod.
const NoopAnnotation = "bench.poolguard.dev/noop"

// Noop is the floor any webhook pays: controller-runtime decodes the
// AdmissionReview and answers "allowed" without a patch. Its patching
// variant answers with a constant one-annotation patch instead: the floor
// of any webhook that mutates pods, which makes the API server apply the
// patch and run its in-tree mutating plugins a second time. It counts calls
// so that a benchmark can tell when the API server has started calling it.
type Noop struct {
	calls atomic.Int64
}

// Handlers returns the mutating and validating no-op handlers by path, for
// harness.Options.ExtraHandlers.
func (n *Noop) Handlers() map[string]http.Handler {
	allow := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		n.calls.Add(1)
		return admission.Allowed("")
	})
	// The benchmark's pods all carry annotations, so the patch can add one
	// key without creating the map.
	patch := admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		n.calls.Add(1)
		return admission.Patched("", jsonpatch.NewOperation("add", "/metadata/annotations/"+strings.ReplaceAll(NoopAnnotation, "/", "~1"), "1"))
	})
	return map[string]http.Handler{
		PathNoopMutate:   &admission.Webhook{Handler: allow},
		PathNoopValidate: &admission.Webhook{Handler: allow},
		PathNoopPatch:    &admission.Webhook{Handler: patch},
	}
}

// Calls returns how many requests the no-op webhook has answered.
func (n *Noop) Calls() int64 { return n.calls.Load() }
