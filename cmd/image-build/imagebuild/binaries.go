package imagebuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// buildBinaries compiles spec's binaries for one platform into dir, all in
// one go build so that the packages they share are compiled once.
//
// The flags are what makes them reproducible and static: CGO_ENABLED=0 (no
// libc, no dynamic loader), -trimpath (no paths of this machine),
// -buildvcs=false and -buildid= (no VCS state or build ID: the version and
// revision are stamped and labelled explicitly), and -s -w (no symbol table
// or DWARF; stack traces keep their function names and lines).
func buildBinaries(ctx context.Context, spec Spec, p v1.Platform, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	ldflags := "-s -w -buildid= -X main.version=" + spec.Version
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", dir + string(filepath.Separator)}
	for _, b := range spec.Binaries {
		args = append(args, b.Package)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = spec.ModuleDir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0",
		"GOOS="+p.OS,
		"GOARCH="+p.Architecture,
		// The baseline of each architecture, whatever the builder's
		// environment says: the same inputs give the same binaries, and
		// they run on every machine of the platform.
		"GOAMD64=v1",
		"GOARM64=v8.0",
		// A user's GOFLAGS (-race, -cover, -tags) would change the binaries.
		"GOFLAGS=-mod=readonly",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s/%s: %w\n%s", p.OS, p.Architecture, err, out.Bytes())
	}
	// go build -o DIR/ names each binary after its package's directory.
	for _, b := range spec.Binaries {
		built := filepath.Join(dir, filepath.Base(b.Package))
		if filepath.Base(b.Package) == b.Name {
			continue
		}
		if err := os.Rename(built, filepath.Join(dir, b.Name)); err != nil {
			return fmt.Errorf("naming %s: %w", b.Name, err)
		}
	}
	return nil
}
