package allocator

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreImportsNoKubernetes keeps the allocation core what its package
// documentation says: ranges, blocks and slots, with no Kubernetes package
// and no policy among its dependencies, direct or not. Choosing pools is
// policy's job, storing state kubestore's.
func TestCoreImportsNoKubernetes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "poolguard.dev/poolguard/allocator").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "sigs.k8s.io/") ||
			(strings.HasPrefix(dep, "poolguard.dev/") && dep != "poolguard.dev/poolguard/allocator") {
			t.Errorf("the allocation core depends on %s", dep)
		}
	}
}
