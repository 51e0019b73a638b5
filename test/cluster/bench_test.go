package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	apiv1alpha1 "poolguard.dev/poolguard/api/v1alpha1"
	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/cluster/story"
	"poolguard.dev/poolguard/test/harness"
	"poolguard.dev/poolguard/test/netlab"
)

// The burst each node gets: Deployments created at once, each with
// replicas pods.
const (
	burstDeployments = 5
	burstReplicas    = 10
)

// burstResult is what one burst measured.
type burstResult struct {
	ipam       string
	pods       int
	podsPerSec float64
	p50, p99   time.Duration
}

// BenchmarkPodsToRunning starts the real node twice, with the reference
// host-local and with poolguard-ipam as the bridge's IPAM, and on each
// creates a burst of Deployments at once, measuring every pod from the
// moment the API server tells a watcher it exists to the moment it reports
// Running, and the burst's pods per second. One run, side by side, as
// ratios: the machine is shared. poolguard-ipam runs here without the
// webhook (its pods get the fail-safe Automatic pool), to measure the
// node's allocation path alone.
func BenchmarkPodsToRunning(b *testing.B) {
	pluginDir := b.TempDir()
	if err := netlab.BuildPlugin(pluginDir); err != nil {
		b.Fatal(err)
	}
	var rows []burstResult
	for _, ipam := range []string{"host-local", "poolguard-ipam"} {
		cfg := cluster.Config{}
		if ipam == "poolguard-ipam" {
			cfg = cluster.Config{
				ExtraRanges: []netip.Prefix{generalPool},
				IPAM:        cluster.PoolguardIPAM,
				Plugins:     map[string]string{"poolguard-ipam": pluginDir + "/poolguard-ipam"},
			}
		}
		r, err := burstOn(cfg, ipam)
		if err != nil {
			b.Fatalf("%s: %v", ipam, err)
		}
		rows = append(rows, r)
	}
	base := rows[0]
	fmt.Fprintf(os.Stdout, "\nPods from create to Running on the real node (%d Deployments × %d replicas at once)\n\n", burstDeployments, burstReplicas)
	fmt.Fprintln(os.Stdout, "| node IPAM | pods | pods/s | p50 ms | p99 ms | pods/s vs host-local | p99 vs host-local |")
	fmt.Fprintln(os.Stdout, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(os.Stdout, "| %s | %d | %.1f | %d | %d | %.2f | %.2f |\n", r.ipam, r.pods, r.podsPerSec, r.p50.Milliseconds(), r.p99.Milliseconds(),
			r.podsPerSec/base.podsPerSec, float64(r.p99)/float64(base.p99))
	}
	last := rows[len(rows)-1]
	b.ReportMetric(last.podsPerSec/base.podsPerSec, "pods/s-ratio")
}

// burstOn starts a cluster with cfg, runs one burst on it and closes it.
func burstOn(cfg cluster.Config, ipam string) (r burstResult, err error) {
	c, err := cluster.Start(cfg)
	if err != nil {
		return r, err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if ipam == "poolguard-ipam" {
		if err := c.InstallPoolguardCRDs(); err != nil {
			return r, err
		}
		cl, err := harness.Client(c.Config)
		if err != nil {
			return r, err
		}
		if err := cl.Create(ctx, &apiv1alpha1.IPPool{
			ObjectMeta: metav1.ObjectMeta{Name: "general"},
			Spec:       apiv1alpha1.IPPoolSpec{CIDR: generalPool.String(), AssignmentMode: apiv1alpha1.AssignmentAutomatic},
		}); err != nil {
			return r, err
		}
	}
	for {
		if _, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	w, err := c.Client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return r, err
	}
	defer w.Stop()
	start := time.Now()
	for i := range burstDeployments {
		if err := story.CreateDeployment(ctx, c.Client, "default", fmt.Sprintf("burst-%d", i), burstReplicas); err != nil {
			return r, err
		}
	}
	want := burstDeployments * burstReplicas
	seen := map[string]time.Time{}
	var latencies []time.Duration
	var lastRunning time.Time
	for len(latencies) < want {
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("%d of %d pods Running: %w", len(latencies), want, ctx.Err())
		case ev, ok := <-w.ResultChan():
			if !ok {
				return r, fmt.Errorf("the watch ended with %d of %d pods Running", len(latencies), want)
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted {
				continue
			}
			now := time.Now()
			first, known := seen[p.Name]
			if !known {
				seen[p.Name] = now
				first = now
			}
			if p.Status.Phase == corev1.PodRunning && !first.IsZero() {
				latencies = append(latencies, now.Sub(first))
				lastRunning = now
				seen[p.Name] = time.Time{} // counted
			}
		}
	}
	slices.Sort(latencies)
	return burstResult{
		ipam: ipam, pods: want,
		podsPerSec: float64(want) / lastRunning.Sub(start).Seconds(),
		p50:        latencies[len(latencies)/2],
		p99:        latencies[(len(latencies)*99)/100],
	}, nil
}
