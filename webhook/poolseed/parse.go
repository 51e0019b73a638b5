package poolseed

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/api/v1alpha1"
)

// DataKey is the ConfigMap key holding the pools: the chart's `ippools`
// value as YAML.
const DataKey = "ippools.yaml"

// ErrBadPool: an entry of the pool list cannot become an IPPool at all
// (no name, no spec, unknown fields). What the API server refuses is
// reported with the API server's own error instead.
var ErrBadPool = errors.New("bad IPPool in values")

// Pool is one pool as the release declares it.
type Pool struct {
	// Name is the IPPool's name.
	Name string
	// Spec is the spec exactly as written in values, applied as is: the
	// fields it leaves out stay the webhook's to default.
	Spec map[string]any
}

// entry is one item of the list, strictly typed so that a misspelt field
// ("cdir") is an error, not a silently missing CIDR.
type entry struct {
	Name string               `json:"name"`
	Spec *v1alpha1.IPPoolSpec `json:"spec"`
}

// Parse reads the pool list (YAML or JSON: a list of {name, spec}). It
// returns the pools it can apply and one ErrBadPool-wrapping error per entry
// it cannot; a document that is not such a list is a single error. Empty
// input is an empty list.
func Parse(data []byte) ([]Pool, []error) {
	var raw []map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, []error{fmt.Errorf("%w: %s is not a list of {name, spec}: %v", ErrBadPool, DataKey, err)}
	}
	var pools []Pool
	var errs []error
	seen := map[string]bool{}
	for i, item := range raw {
		b, err := yaml.Marshal(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: ippools[%d]: %v", ErrBadPool, i, err))
			continue
		}
		var e entry
		if err := yaml.UnmarshalStrict(b, &e); err != nil {
			errs = append(errs, fmt.Errorf("%w: ippools[%d] (%v): %v", ErrBadPool, i, item["name"], err))
			continue
		}
		switch {
		case e.Name == "":
			errs = append(errs, fmt.Errorf("%w: ippools[%d] has no name", ErrBadPool, i))
			continue
		case len(validation.IsDNS1123Subdomain(e.Name)) > 0:
			errs = append(errs, fmt.Errorf("%w: ippools[%d]: name %q: %v", ErrBadPool, i, e.Name, validation.IsDNS1123Subdomain(e.Name)))
			continue
		case e.Spec == nil:
			errs = append(errs, fmt.Errorf("%w: ippools[%d] (%s) has no spec", ErrBadPool, i, e.Name))
			continue
		case seen[e.Name]:
			errs = append(errs, fmt.Errorf("%w: ippools[%d]: IPPool %q is listed twice", ErrBadPool, i, e.Name))
			continue
		}
		seen[e.Name] = true
		spec, _ := item["spec"].(map[string]any)
		pools = append(pools, Pool{Name: e.Name, Spec: spec})
	}
	return pools, errs
}
