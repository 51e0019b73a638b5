package imagebuild_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"poolguard.dev/poolguard/cmd/image-build/imagebuild"
)

// What the tests stamp and label: values no real build uses, so a test
// cannot pass on defaults.
const (
	testVersion  = "v9.9.9-imagebuild-test"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testSource   = "https://example.invalid/poolguard"
	testName     = "ghcr.io/poolguard/poolguard:" + testVersion
)

var testCreated = time.Unix(1700000000, 0).UTC()

// workRoot holds every build of this test binary; TestMain removes it.
var workRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imagebuild-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// moduleDir is the poolguard module the binaries are built from.
func moduleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// testPlatforms are both release platforms; with -short only this
// machine's, which halves the compile and link time.
func testPlatforms(t *testing.T) []v1.Platform {
	if !testing.Short() {
		return imagebuild.Platforms
	}
	for _, p := range imagebuild.Platforms {
		if p.Architecture == runtime.GOARCH {
			return []v1.Platform{p}
		}
	}
	t.Skipf("-short builds only this machine's platform, and %s is not one of the image's", runtime.GOARCH)
	return nil
}

func poolguardSpec(t *testing.T) imagebuild.Spec {
	s := imagebuild.Poolguard(moduleDir(t), testName, testVersion, testRevision, testSource, testCreated)
	s.Platforms = testPlatforms(t)
	return s
}

var shared struct {
	once sync.Once
	idx  v1.ImageIndex
	err  error
}

// sharedIndex is the poolguard image, built once per test binary: the
// tests that only inspect it share one build.
func sharedIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	spec := poolguardSpec(t)
	shared.once.Do(func() {
		dir := filepath.Join(workRoot, "shared")
		shared.idx, shared.err = imagebuild.Build(context.Background(), spec, dir)
	})
	if shared.err != nil {
		t.Fatalf("Build: %v", shared.err)
	}
	return shared.idx
}

func digest(t *testing.T, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("index digest: %v", err)
	}
	return d
}
