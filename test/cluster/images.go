package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/charts"
	"poolguard.dev/poolguard/cmd/image-build/imagebuild"
	"poolguard.dev/poolguard/test/harness"
)

// ChartImage is the chart's default image reference: its repository and
// appVersion, what a release publishes and `helm install` without image
// values runs.
func ChartImage() (string, error) {
	b, err := os.ReadFile(filepath.Join(charts.ChartDir(), "Chart.yaml"))
	if err != nil {
		return "", err
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		return "", fmt.Errorf("reading the chart's appVersion from Chart.yaml: %w", err)
	}
	return "ghcr.io/poolguard/poolguard:" + chart.AppVersion, nil
}

// PauseImage is the sandbox image containerd is configured with, and the
// image the tests' pods run (with imagePullPolicy Never): the pause image
// make pause-image builds, imported by Start. Its registry does not exist,
// so a missing import fails loudly instead of pulling from the internet.
const PauseImage = imagebuild.PauseName

// ImportPoolguardImage builds the chart's image from this checkout, as
// make image does but for this machine's platform only, and imports it
// into the node's containerd under ref. Imported, not pulled from a
// registry: the node then runs exactly the archive a user would import
// into an air-gapped node (ctr images import), and a failed import shows
// as a failed pull of a registry that is not there, never as a pull from
// the internet.
func (c *Cluster) ImportPoolguardImage(ref string) error {
	return c.buildAndImport(imagebuild.Poolguard(harness.RepoRoot(), ref, "test", "test", imageSource, time.Unix(0, 0).UTC()))
}

// importPauseImage builds the pause image (cmd/pause) and imports it.
func (c *Cluster) importPauseImage() error {
	return c.buildAndImport(imagebuild.Pause(harness.RepoRoot(), "test", imageSource, time.Unix(0, 0).UTC()))
}

const imageSource = "https://github.com/poolguard/poolguard"

// buildAndImport builds spec for this machine's platform with the image
// build make image runs, writes its OCI archive and imports it.
func (c *Cluster) buildAndImport(spec imagebuild.Spec) error {
	dir := filepath.Join(c.Dir, "images", filepath.Base(spec.Binaries[0].Name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	spec.Platforms = []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}}
	idx, err := imagebuild.Build(context.Background(), spec, filepath.Join(dir, "build"))
	if err != nil {
		return fmt.Errorf("building the image %s: %w", spec.Name, err)
	}
	archive := filepath.Join(dir, "image.tar")
	if err := imagebuild.WriteArchive(archive, idx, spec.Name); err != nil {
		return err
	}
	return c.importImage(archive)
}

// Helm is helm from bin/, run inside the node's network namespace as the
// cluster's admin, with its caches and configuration in the cluster's
// directory.
func (c *Cluster) Helm() charts.Helm {
	home := filepath.Join(c.Dir, "helm")
	return charts.Helm{
		Path:   filepath.Join(c.cfg.BinDir, "helm"),
		Prefix: []string{"nsenter", "--net=" + filepath.Join(netnsDir, c.Netns)},
		Env: []string{
			"KUBECONFIG=" + c.pki.Admin,
			"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
			"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
			"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		},
	}
}
