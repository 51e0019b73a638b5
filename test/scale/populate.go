package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
	"poolguard.dev/poolguard/allocator/memstore"
	"poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/policy"
)

// parallel runs fn(0..n-1) on workers goroutines and returns the first
// error; progress, when set, is told every 10% of the way.
func parallel(ctx context.Context, n, workers int, progress func(done int), fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	step := int64(max(1, n/10))
	for w := 0; w < min(workers, max(n, 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				if d := done.Add(1); progress != nil && d%step == 0 {
					progress(int(d))
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// retryCreate creates obj, retrying what a loaded API server answers
// transiently (timeouts, 429, 5xx, and a webhook whose informer has not
// seen a namespace or pool yet).
func retryCreate(ctx context.Context, c client.Client, obj client.Object) error {
	return retry(ctx, 30, func() error { return c.Create(ctx, obj) }, apierrors.IsAlreadyExists, transient)
}

// retry calls fn until it succeeds or fails with done (which counts as
// success), backing off while it fails with again, at most tries times.
func retry(ctx context.Context, tries int, fn func() error, done, again func(error) bool) error {
	var err error
	for try := 0; try < tries; try++ {
		if err = fn(); err == nil || done(err) {
			return nil
		}
		if !again(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
		}
	}
	return err
}

func transient(err error) bool {
	return apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) ||
		strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "connection reset")
}

// Population is what Populate created, for the measures.
type Population struct {
	Shape Shape
	// Pods are the population's pods as admitted (frozen annotations,
	// UIDs), by index k (see Shape.PodAt).
	Pods []admitted
	// Claims, Blocks are how many of each the allocations wrote.
	Claims, Blocks int
	// Addresses holds some of the allocated addresses, for who-had.
	Addresses []string
	// Timings says how long each step took.
	Timings []Step
}

// Step is one timed step of the population.
type Step struct {
	What  string
	N     int
	Took  time.Duration
	Extra string
}

// admitted is a population pod after admission: what the allocation
// needs.
type admitted struct {
	uid         types.UID
	annotations map[string]string
}

// Populate creates the shape's nodes, pools, namespaces and pods (pods
// through admission), then allocates every pod an address as the CNI
// plugin would (policy.ChoosePools, then allocator.Allocator.Assign) in
// memory and writes the result through the allocator's own store
// (kubestore): blocks, node affinities, claims with the history's
// finalizer and shard labels, pools marked in use.
func Populate(ctx context.Context, c client.Client, store kubestore.Store, s Shape, workers int, log io.Writer) (*Population, error) {
	pop := &Population{Shape: s}
	step := func(what string, n int, fn func(ctx context.Context, i int) error) error {
		start := time.Now()
		err := parallel(ctx, n, workers, func(d int) {
			fmt.Fprintf(log, "  %s: %d/%d (%.0f/s)\n", what, d, n, float64(d)/time.Since(start).Seconds())
		}, fn)
		pop.Timings = append(pop.Timings, Step{What: what, N: n, Took: time.Since(start)})
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := step("nodes", s.Nodes, func(ctx context.Context, i int) error { return retryCreate(ctx, c, s.Node(i)) }); err != nil {
		return nil, err
	}
	if err := step("IPPools", s.Pools, func(ctx context.Context, i int) error { return retryCreate(ctx, c, s.Pool(i)) }); err != nil {
		return nil, err
	}
	if err := step("namespaces", s.Namespaces, func(ctx context.Context, i int) error { return retryCreate(ctx, c, s.Namespace(i)) }); err != nil {
		return nil, err
	}
	namespaces := make([]*corev1.Namespace, s.Namespaces)
	for i := range namespaces {
		namespaces[i] = s.Namespace(i)
	}
	pop.Pods = make([]admitted, s.Pods)
	if err := step("pods (through admission)", s.Pods, func(ctx context.Context, k int) error {
		at := s.PodAt(k)
		p := Pod(namespaces[at.Namespace], PopulationPodName(at.Index), at.Index)
		if err := retryCreate(ctx, c, p); err != nil {
			return err
		}
		if p.UID == "" { // created by an earlier, timed-out attempt
			if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
		}
		if _, ok := p.Annotations[policy.AnnotationProvenance]; !ok {
			return fmt.Errorf("pod %s/%s was admitted without being frozen", p.Namespace, p.Name)
		}
		pop.Pods[k] = admitted{uid: p.UID, annotations: p.Annotations}
		return nil
	}); err != nil {
		return nil, err
	}
	mem, err := allocate(ctx, c, s, namespaces, pop)
	if err != nil {
		return nil, err
	}
	blocks, claims := mem.Blocks(), mem.Claims()
	pop.Blocks, pop.Claims = len(blocks), len(claims)
	for i := 0; i < len(claims) && len(pop.Addresses) < 64; i += max(1, len(claims)/64) {
		pop.Addresses = append(pop.Addresses, claims[i].Addresses[0].Addr.String())
	}
	// The order the allocator writes in: a block before the claim that
	// records its slot.
	if err := step("IPAMBlocks (allocator store)", len(blocks), func(ctx context.Context, i int) error {
		b := blocks[i]
		b.Version = ""
		return retryStore(ctx, func() error { return store.CreateBlock(ctx, b) })
	}); err != nil {
		return nil, err
	}
	if err := step("IPAMAffinities (allocator store)", s.Nodes, func(ctx context.Context, i int) error {
		a, err := mem.GetAffinity(ctx, NodeName(i))
		if err != nil || len(a.Blocks) == 0 {
			return err
		}
		a.Version = ""
		return retryStore(ctx, func() error { return store.SaveAffinity(ctx, a) })
	}); err != nil {
		return nil, err
	}
	if err := step("IPPools marked in use (allocator store)", s.Pools, func(ctx context.Context, i int) error {
		name := s.Pool(i).Name
		if !mem.InUse(name) {
			return nil
		}
		return retryStore(ctx, func() error { return store.MarkPoolInUse(ctx, name) })
	}); err != nil {
		return nil, err
	}
	if err := step("IPAMClaims (allocator store)", len(claims), func(ctx context.Context, i int) error {
		cl := claims[i]
		cl.Version = ""
		return retryStore(ctx, func() error { return store.CreateClaim(ctx, &cl) })
	}); err != nil {
		return nil, err
	}
	return pop, nil
}

// retryStore retries the allocator store's transient failures.
func retryStore(ctx context.Context, fn func() error) error {
	return retry(ctx, 20, fn, func(err error) bool { return errors.Is(err, allocator.ErrExists) }, func(err error) bool {
		return errors.Is(err, allocator.ErrUnavailable) || errors.Is(err, allocator.ErrBusy)
	})
}

// allocate runs the allocation engine for every population pod against
// an in-memory store, choosing its pools exactly as the plugin does from
// the pod as admitted, its namespace and its node.
func allocate(ctx context.Context, c client.Client, s Shape, namespaces []*corev1.Namespace, pop *Population) (*memstore.Store, error) {
	start := time.Now()
	// The pools as the API server stores them (defaulted by poolguard's
	// IPPool webhook), read the way the plugin reads them.
	var list v1alpha1.IPPoolList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	set := kubestore.FromIPPools(list.Items)
	mem := memstore.New()
	for k := range pop.Pods {
		at := s.PodAt(k)
		ns := namespaces[at.Namespace]
		node := s.Node(at.Node)
		facts := policy.PodFacts{Namespace: ns.Name, Name: PopulationPodName(at.Index), Node: node.Name,
			Annotations: pop.Pods[k].annotations, NamespaceLabels: ns.Labels, NodeLabels: node.Labels}
		choices, err := policy.ChoosePools(facts, set.Index, policy.FailSafeRefuse)
		if err != nil {
			return nil, fmt.Errorf("choosing pools for pod %s/%s: %w", ns.Name, facts.Name, err)
		}
		a := &allocator.Allocator{Store: mem, Node: node.Name}
		if _, err := a.Assign(ctx, allocator.Request{
			Network: networkName, ContainerID: fmt.Sprintf("%064x", k), IfName: "eth0",
			Pod:   allocator.PodRef{Namespace: ns.Name, Name: facts.Name, UID: string(pop.Pods[k].uid)},
			Wants: set.Wants(choices), SkipClaimRead: true,
		}); err != nil {
			return nil, fmt.Errorf("allocating for pod %s/%s: %w", ns.Name, facts.Name, err)
		}
	}
	pop.Timings = append(pop.Timings, Step{What: "allocations (engine, in memory)", N: len(pop.Pods), Took: time.Since(start)})
	return mem, nil
}

// networkName is the CNI network's name in the claims (part of their ID),
// as the chart's network configuration names it.
const networkName = "k8s-pod-network"
