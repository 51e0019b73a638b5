package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/controller"
	"poolguard.dev/poolguard/allocator/history/archive"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
	"poolguard.dev/poolguard/test/harness"
)

// startRecorder runs the allocator's history recorder, as the webhook's
// leader does, for the claims of one namespace's pods (the other tests'
// claims carry no finalizer and must not get one), until the test ends.
func startRecorder(t testing.TB, ns string) {
	t.Helper()
	// The recorder logs a line per record: a benchmark's churn would
	// drown its table, so only a test's log gets them.
	log := logr.Discard()
	if tt, ok := t.(*testing.T); ok {
		log = testr.New(tt)
	}
	ctrl.SetLogger(logr.Discard()) // controller-runtime's global one, unused here
	harness.StartManager(t, env.Config, log, func(mgr manager.Manager) error {
		rec := &controller.Recorder{Client: mgr.GetClient(), Archive: archive.Archive{Client: mgr.GetClient(), Live: mgr.GetAPIReader()}, Log: log}
		return ctrl.NewControllerManagedBy(mgr).Named("history").For(&v1alpha1.IPAMClaim{}).
			WithEventFilter(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.(*v1alpha1.IPAMClaim).Spec.Pod.Namespace == ns })).
			Complete(rec)
	})
}

// TestHistoryThroughThePlugin: the real plugin, configured for the history,
// is killed mid-ADD (its slot written, its claim not), the runtime retries
// the ADD, the pod runs and is deleted with a DEL. The history then holds
// exactly one record of that attachment, with the address the retry
// printed, the pod's name, UID and node, and its container and interface;
// who-had finds it for a time the pod held the address, after the pod and
// its claim are gone.
func TestHistoryThroughThePlugin(t *testing.T) {
	const ns, node = "hist", "hist-node"
	createNamespace(t, ns, nil)
	createNode(t, node, nil)
	createPool(t, "hist-pool", "198.18.33.0/28", nil)
	startRecorder(t, ns)
	pod := createPod(t, ns, "killed-then-retried", node, frozen([]string{"hist-pool"}))
	killedAtClaimWrite(t, pod, node)
	conf := netConf{Node: node, History: true}
	addr := mustOK(t, do(t, call{Cmd: "ADD", ContainerID: pod.Name, Pod: pod, Conf: conf}), "the retried ADD").Addrs()[0]
	id := allocator.ClaimID(networkName, pod.Name, "eth0")
	var claim v1alpha1.IPAMClaim
	if err := kc.Get(context.Background(), client.ObjectKey{Name: id}, &claim); err != nil || !controllerutil.ContainsFinalizer(&claim, v1alpha1.FinalizerHistory) {
		t.Fatalf("the plugin's claim %s: %v, finalizers %v, want %s", id, err, claim.Finalizers, v1alpha1.FinalizerHistory)
	}
	time.Sleep(1100 * time.Millisecond)
	during := time.Now()
	time.Sleep(1100 * time.Millisecond)
	mustOK(t, do(t, call{Cmd: "DEL", ContainerID: pod.Name, Pod: pod, Conf: conf}), "DEL")
	if err := kc.Delete(context.Background(), pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := kc.Get(context.Background(), client.ObjectKey{Name: id}, &claim)
		if client.IgnoreNotFound(err) == nil && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the released claim was not recorded and let go within 30s: %v %+v", err, claim.ObjectMeta)
		}
		time.Sleep(100 * time.Millisecond)
	}
	all, err := archive.WhoHad(context.Background(), kc, addr, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("%s: %d records, want exactly one (the killed ADD handed out nothing, its retry once): %+v", addr, len(all), all)
	}
	r := all[0]
	if r.Namespace != ns || r.Pod != pod.Name || r.PodUID != string(pod.UID) || r.Node != node || r.ContainerID != pod.Name || r.IfName != "eth0" || r.Pool != "hist-pool" || r.Open() {
		t.Errorf("record %+v", r)
	}
	if got, err := archive.WhoHad(context.Background(), kc, addr, during); err != nil || len(got) != 1 || got[0].Pod != pod.Name {
		t.Errorf("who had %s at %s: %+v %v", addr, during.Format(time.RFC3339), got, err)
	}
	if got, err := archive.WhoHad(context.Background(), kc, addr, time.Now().Add(2*time.Second)); err != nil || len(got) != 0 {
		t.Errorf("who has %s after the DEL: %+v %v, want nobody", addr, got, fmt.Sprint(err))
	}
}
