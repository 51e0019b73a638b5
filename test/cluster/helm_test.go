package cluster_test

import (
	"context"
	"testing"

	"poolguard.dev/poolguard/test/cluster"
	"poolguard.dev/poolguard/test/cluster/story"
)

// TestHelmInstallOnNode is the install a user does, on a real node: the
// chart's image built from this checkout and imported into containerd,
// `helm install` of charts/poolguard with no admin shortcut, the installer
// DaemonSet writing the plugin, its node-bound credentials and the node's
// CNI configuration, the webhook's pods taking their addresses from
// poolguard-ipam; then the story with real pods, a real firewall, an
// upgrade under load and an uninstall (package story, which make demo
// narrates). Each step needs the ones before it: the first to fail ends
// the test.
func TestHelmInstallOnNode(t *testing.T) {
	c := startCluster(t, cluster.Config{Routed: story.Network()})
	t.Logf("cluster memory before the install: %d MiB resident", c.MemoryRSS()>>20)
	s, err := story.New(c, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, step := range s.Steps() {
		if !t.Run(step.Title, func(t *testing.T) {
			if err := step.Run(ctx); err != nil {
				t.Fatal(err)
			}
		}) {
			t.FailNow()
		}
	}
}
