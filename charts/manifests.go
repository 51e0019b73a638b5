package charts

import (
	"bytes"
	"fmt"
	"path/filepath"
)

// ManifestsDir holds the rendered manifests for kubectl-apply users.
func ManifestsDir() string { return filepath.Join(RepoRoot(), "deploy") }

// The release deploy/ is rendered as: the chart's default names, in the
// namespace the docs and the test harness use.
const (
	ManifestsRelease   = "poolguard"
	ManifestsNamespace = "poolguard-system"
)

// manifestVariants are the files in deploy/ and the values each is rendered
// with. The header says how to regenerate them, so nobody edits them by hand.
var manifestVariants = []struct {
	file, about string
	set         []string
	// noCRDs leaves poolguard's CRDs out (Calico mode reads Calico's).
	noCRDs bool
}{
	{"poolguard.yaml", "cert-manager issues the webhook certificate (needs cert-manager installed)", nil, false},
	{"poolguard-no-cert-manager.yaml", "poolguard-webhook keeps its own CA and serving certificate (no cert-manager)", []string{"certificates.mode=internal"}, false},
	{"poolguard-calico.yaml", "Calico mode, the admission guard over Calico's own IPPools (needs Calico and cert-manager installed)", []string{"mode=calico"}, true},
}

// Manifests renders every file of deploy/ and returns them by file name.
func Manifests(h Helm) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, v := range manifestVariants {
		stream, err := h.Template(Release{Name: ManifestsRelease, Namespace: ManifestsNamespace, Set: v.set, IncludeCRDs: !v.noCRDs})
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "# poolguard for kubectl apply: %s.\n", v.about)
		fmt.Fprintf(&b, "# GENERATED from charts/poolguard by 'make manifests'; do not edit. Values:")
		if len(v.set) == 0 {
			b.WriteString(" chart defaults")
		}
		for _, s := range v.set {
			fmt.Fprintf(&b, " --set %s", s)
		}
		fmt.Fprintf(&b, ".\n#\n#   kubectl apply --server-side -f %s\n", v.file)
		// Helm does not render the release namespace; kubectl users need it.
		// The CNI installer mounts host paths, which the restricted and
		// baseline Pod Security levels forbid.
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    pod-security.kubernetes.io/enforce: privileged\n", ManifestsNamespace)
		b.Write(stream)
		out[v.file] = b.Bytes()
	}
	return out, nil
}
