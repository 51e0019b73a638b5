package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Run is the outcome of creating a batch of pods.
type Run struct {
	// Elapsed is the wall time from the first request to the last answer.
	Elapsed time.Duration
	// Latencies are the client-side create latencies, one per pod.
	Latencies []time.Duration
	// CPU is the CPU time each process used during the run.
	CPU CPU
}

// PodsPerSecond is the run's throughput.
func (r Run) PodsPerSecond() float64 { return float64(len(r.Latencies)) / r.Elapsed.Seconds() }

// Create creates pods with a fixed number of concurrent workers, as a
// controller's work queue does, and times each request. Any failure fails
// the run: a refused pod means the setup is wrong, not slow.
func Create(ctx context.Context, cs kubernetes.Interface, pods []*corev1.Pod, workers int) (Run, error) {
	lat := make([]time.Duration, len(pods))
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(pods) || ctx.Err() != nil {
					return
				}
				p := pods[i]
				t := time.Now()
				_, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
				lat[i] = time.Since(t)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("creating pod %d in %s: %w", i, p.Namespace, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return Run{Elapsed: time.Since(start), Latencies: lat}, firstErr
}

// DeletePods removes every pod of the world's namespaces, so that each run
// starts from the same, empty, state. Unscheduled pods go at once.
func (w *World) DeletePods(ctx context.Context, cs kubernetes.Interface) error {
	for _, ns := range w.Namespaces {
		err := cs.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("deleting the pods of %s: %w", ns.Name, err)
		}
	}
	return nil
}

// Pods returns n fresh pods, built before the clock starts.
func (w *World) Pods(n int) []*corev1.Pod {
	out := make([]*corev1.Pod, n)
	for i := range out {
		out[i] = w.Pod(i)
	}
	return out
}
