package cluster

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"poolguard.dev/poolguard/test/harness"
)

// PauseImage is the reference of the locally built pause image: the
// sandbox image containerd is configured with, and the image the test's
// pods run (with imagePullPolicy Never). Its registry does not exist, so a
// missing import fails loudly instead of pulling from the internet.
const PauseImage = "poolguard.test/pause:local"

// buildPauseImage builds the pause program (cmd/pause, the one `make
// pause-image` packs) as a static binary and writes an image tarball
// holding only it (the docker archive format ctr imports), into dir. Layer and config carry no timestamps, so the same
// binary gives the same image.
func buildPauseImage(dir string) (string, error) {
	bin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/pause")
	cmd.Dir = harness.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the pause binary: %w: %s", err, strings.TrimSpace(string(out)))
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return "", err
	}
	if _, err := tw.Write(data); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	})
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: diffIDs(layer)},
		// 65535 is the conventional pause user: nobody needs root to wait.
		Config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"},
	})
	if err != nil {
		return "", err
	}
	ref, err := name.NewTag(PauseImage)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "pause.tar")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return "", fmt.Errorf("writing the pause image: %w", err)
	}
	return path, nil
}

func diffIDs(l v1.Layer) []v1.Hash {
	h, err := l.DiffID()
	if err != nil {
		return nil
	}
	return []v1.Hash{h}
}
