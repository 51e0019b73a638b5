package imagebuild_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"poolguard.dev/poolguard/cmd/image-build/imagebuild"
)

// TestReproducible builds the image twice, from scratch into two work
// directories at two different times, and expects the same index digest
// and byte-identical archives: nothing of the build's time, directory or
// machine may reach the image.
func TestReproducible(t *testing.T) {
	first := sharedIndex(t)
	second, err := imagebuild.Build(context.Background(), poolguardSpec(t), t.TempDir())
	if err != nil {
		t.Fatalf("second Build: %v", err)
	}
	d1, d2 := digest(t, first), digest(t, second)
	if d1 != d2 {
		t.Fatalf("two builds of the same inputs differ: %s and %s", d1, d2)
	}
	t.Logf("index digest, both builds: %s", d1)

	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	if err := imagebuild.WriteArchive(a, first, testName); err != nil {
		t.Fatal(err)
	}
	if err := imagebuild.WriteArchive(b, second, testName); err != nil {
		t.Fatal(err)
	}
	ab, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, bb) {
		t.Fatalf("the two archives differ (%d and %d bytes)", len(ab), len(bb))
	}
}

// TestInputsChangeTheDigest guards the test above against passing
// vacuously: a different creation time must give another digest.
func TestInputsChangeTheDigest(t *testing.T) {
	spec := imagebuild.Pause(moduleDir(t), testRevision, testSource, testCreated)
	spec.Platforms = testPlatforms(t)
	a, err := imagebuild.Build(context.Background(), spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	spec.Created = spec.Created.Add(1e9)
	b, err := imagebuild.Build(context.Background(), spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, a) == digest(t, b) {
		t.Fatal("a different creation time gave the same digest")
	}
}
