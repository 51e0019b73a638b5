package imagebuild_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"poolguard.dev/poolguard/cmd/image-build/imagebuild"
)

// TestPauseArchive builds the pause image into an archive and reads it as
// `ctr images import` does: an OCI layout whose index.json names the image
// (io.containerd.image.name) and whose blobs match their digests, with a
// config running /pause as a non-root user.
func TestPauseArchive(t *testing.T) {
	spec := imagebuild.Pause(moduleDir(t), testRevision, testSource, testCreated)
	spec.Platforms = testPlatforms(t)
	idx, err := imagebuild.Build(context.Background(), spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pause.tar")
	if err := imagebuild.WriteArchive(path, idx, spec.Name); err != nil {
		t.Fatal(err)
	}

	files := archiveFiles(t, path)
	var layoutFile struct {
		Version string `json:"imageLayoutVersion"`
	}
	unmarshal(t, files["oci-layout"], &layoutFile)
	if layoutFile.Version != "1.0.0" {
		t.Errorf("oci-layout version %q", layoutFile.Version)
	}
	for name, b := range files {
		if hexd, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != hexd {
				t.Errorf("blob %s does not match its digest", name)
			}
		}
	}

	type descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
		Platform    *struct {
			Architecture string `json:"architecture"`
		} `json:"platform"`
	}
	var top struct{ Manifests []descriptor }
	unmarshal(t, files["index.json"], &top)
	if len(top.Manifests) != 1 {
		t.Fatalf("index.json lists %d entries, want the image index", len(top.Manifests))
	}
	named := top.Manifests[0]
	if got := named.Annotations["io.containerd.image.name"]; got != imagebuild.PauseName {
		t.Errorf("io.containerd.image.name %q, want %q", got, imagebuild.PauseName)
	}
	if named.Digest != digest(t, idx).String() {
		t.Errorf("index.json points at %s, the index is %s", named.Digest, digest(t, idx))
	}

	var index struct{ Manifests []descriptor }
	unmarshal(t, blob(t, files, named.Digest), &index)
	if len(index.Manifests) != len(spec.Platforms) {
		t.Fatalf("%d manifests, want %d", len(index.Manifests), len(spec.Platforms))
	}
	for _, m := range index.Manifests {
		var manifest struct{ Config descriptor }
		unmarshal(t, blob(t, files, m.Digest), &manifest)
		var cfg struct {
			Architecture string
			Config       struct {
				User       string
				Entrypoint []string
			}
		}
		unmarshal(t, blob(t, files, manifest.Config.Digest), &cfg)
		if m.Platform == nil || cfg.Architecture != m.Platform.Architecture {
			t.Errorf("manifest %s: config for %q", m.Digest, cfg.Architecture)
		}
		if cfg.Config.User != "65535:65535" || strings.Join(cfg.Config.Entrypoint, " ") != "/pause" {
			t.Errorf("%s: user %q entrypoint %q", cfg.Architecture, cfg.Config.User, cfg.Config.Entrypoint)
		}
	}
}

func archiveFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func blob(t *testing.T, files map[string][]byte, digest string) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
	if !ok {
		t.Fatalf("blob %s missing from the archive", digest)
	}
	return b
}

func unmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %.200s", err, b)
	}
}
