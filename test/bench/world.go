package bench

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// World is the pools and namespaces the benchmarks create pods in: a
// mid-sized cluster's worth of pools (a general pool per family, a trusted
// pool restricted by namespace name, a pool per team selected by a label)
// and namespaces whose defaults name them, by name and by CIDR.
type World struct {
	// Prefix starts every object's name, so that a world can share an API
	// server with tests.
	Prefix string
	// Pools are the IPPools, in creation order.
	Pools []*v1alpha1.IPPool
	// Namespaces are the namespaces pods are created in; each carries a
	// pool annotation.
	Namespaces []*corev1.Namespace
}

// Ranges are the address ranges the world's pools use: benchmark and
// documentation ranges only (SPEC §5), disjoint from the ranges the
// webhook's integration tests use so both can share one API server.
var Ranges = []netip.Prefix{
	netip.MustParsePrefix("198.19.0.0/16"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8:100::/40"),
}

// Sizes of the world. Forty pools is more than most clusters run, so the
// per-request cost of looking pools up is not flattered.
const (
	teams      = 32
	v6Teams    = 8
	namespaces = 8
)

// teamLabel selects a team's namespaces in its pool's namespaceSelector.
const teamLabel = "bench.poolguard.dev/team"

// NewWorld describes a world whose names start with prefix.
func NewWorld(prefix string) *World {
	w := &World{Prefix: prefix}
	pool := func(name, cidr string, manual bool, sel *metav1.LabelSelector) {
		p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: prefix + name}, Spec: v1alpha1.IPPoolSpec{CIDR: cidr, NamespaceSelector: sel}}
		if manual {
			p.Spec.AssignmentMode = v1alpha1.AssignmentManual
		}
		w.Pools = append(w.Pools, p)
	}
	var trustedNS []string
	for i := 0; i < namespaces; i += 2 {
		trustedNS = append(trustedNS, w.namespaceName(i))
	}
	pool("general", "198.19.0.0/20", false, nil)
	pool("general-v6", "2001:db8:100::/48", false, nil)
	pool("trusted", "203.0.113.0/24", true, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: policy.LabelNamespaceName, Operator: metav1.LabelSelectorOpIn, Values: trustedNS,
	}}})
	for t := 0; t < teams; t++ {
		pool(fmt.Sprintf("team-%02d", t), fmt.Sprintf("198.19.%d.0/24", 16+t), true,
			&metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: fmt.Sprint(t)}})
	}
	for t := 0; t < v6Teams; t++ {
		pool(fmt.Sprintf("team-%02d-v6", t), fmt.Sprintf("2001:db8:1%02x::/48", 1+t), true,
			&metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: fmt.Sprint(t)}})
	}
	for i := 0; i < namespaces; i++ {
		ann := map[string]string{}
		switch i % 4 {
		case 0: // the firewall-trusted range and the team's own
			ann[policy.AnnotationIPv4Pools] = fmt.Sprintf(`["%strusted", "%steam-%02d"]`, prefix, prefix, i)
		case 1: // the team's pool by CIDR, as Calico also allows
			ann[policy.AnnotationIPv4Pools] = fmt.Sprintf(`["198.19.%d.0/24"]`, 16+i)
		default: // dual stack
			ann[policy.AnnotationIPv4Pools] = fmt.Sprintf(`["%steam-%02d"]`, prefix, i)
			ann[policy.AnnotationIPv6Pools] = fmt.Sprintf(`["%steam-%02d-v6"]`, prefix, i)
		}
		w.Namespaces = append(w.Namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:        w.namespaceName(i),
			Labels:      map[string]string{teamLabel: fmt.Sprint(i), "environment": "production"},
			Annotations: ann,
		}})
	}
	return w
}

func (w *World) namespaceName(i int) string { return fmt.Sprintf("%sns-%d", w.Prefix, i) }

// Create creates the world's pools, then its namespaces. With poolguard's
// webhook running, a namespace naming a pool is refused until the webhook's
// informer has seen the pool, so namespaces are retried for up to a minute.
func (w *World) Create(ctx context.Context, c client.Client) error {
	for _, p := range w.Pools {
		if err := c.Create(ctx, p.DeepCopy()); err != nil {
			return fmt.Errorf("creating IPPool %s: %w", p.Name, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, ns := range w.Namespaces {
		for {
			err := c.Create(ctx, ns.DeepCopy())
			if err == nil {
				break
			}
			if time.Now().After(deadline) || !strings.Contains(err.Error(), "does not exist") {
				return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// Delete removes what Create made, best effort.
func (w *World) Delete(ctx context.Context, c client.Client) {
	for _, ns := range w.Namespaces {
		_ = c.Delete(ctx, ns.DeepCopy())
	}
	for _, p := range w.Pools {
		_ = c.Delete(ctx, p.DeepCopy())
	}
}
