// Command image-build builds poolguard's container images without a
// container engine (`make image`, `make image-push`, `make pause-image`):
// static Go binaries in one reproducible layer per platform, an OCI image
// index for linux/amd64 and linux/arm64, written as an OCI archive and
// optionally pushed. It prints the index digest.
//
//	image-build -image poolguard -out bin/image/poolguard.tar -name ghcr.io/poolguard/poolguard:0.1.0 -version 0.1.0
//	image-build -image poolguard ... -push ghcr.io/me/poolguard:0.1.0
//	image-build -image pause -out bin/image/pause.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"poolguard.dev/poolguard/cmd/image-build/imagebuild"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image-build:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		image    = flag.String("image", "poolguard", `Which image: "poolguard" (the chart's) or "pause" (the local test cluster's sandbox image).`)
		out      = flag.String("out", "", "Where to write the OCI archive (required).")
		ref      = flag.String("name", "", "The name the archive gives the image (default: the push reference, or for pause "+imagebuild.PauseName+").")
		version  = flag.String("version", "devel", "Version stamped into the binaries and labelled.")
		revision = flag.String("revision", "", "VCS revision labelled.")
		source   = flag.String("source", "", "Source repository URL labelled.")
		module   = flag.String("module", ".", "The Go module directory the binaries are built from.")
		push     = flag.String("push", "", "Also push the index to this registry/repository:tag.")
	)
	flag.Parse()
	if *out == "" {
		return fmt.Errorf("-out is required")
	}
	created, err := sourceDate()
	if err != nil {
		return err
	}
	moduleDir, err := filepath.Abs(*module)
	if err != nil {
		return fmt.Errorf("module directory: %w", err)
	}

	var spec imagebuild.Spec
	switch *image {
	case "poolguard":
		name := *ref
		if name == "" {
			name = *push
		}
		if name == "" {
			return fmt.Errorf("-name or -push is required for the poolguard image")
		}
		spec = imagebuild.Poolguard(moduleDir, name, *version, *revision, *source, created)
	case "pause":
		spec = imagebuild.Pause(moduleDir, *revision, *source, created)
		if *ref != "" {
			spec.Name = *ref
		}
	default:
		return fmt.Errorf("unknown -image %q: poolguard or pause", *image)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	// The layers live in the work directory until the archive is written
	// and the push is done.
	work, err := os.MkdirTemp(filepath.Dir(*out), ".build-")
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(work)

	idx, err := imagebuild.Build(ctx, spec, work)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("index digest: %w", err)
	}
	if err := imagebuild.WriteArchive(*out, idx, spec.Name); err != nil {
		return err
	}
	size, err := imagebuild.CompressedSize(idx)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s (%s, %.1f MiB compressed over %d platforms)\n", spec.Name, digest, *out, float64(size)/(1<<20), len(spec.Platforms))
	if *push != "" {
		pushed, err := imagebuild.Push(ctx, idx, *push)
		if err != nil {
			return err
		}
		fmt.Println("pushed", pushed)
	}
	return nil
}

// sourceDate is the time stamped into the image: SOURCE_DATE_EPOCH (the
// reproducible-builds convention; the Makefile sets it to the last
// commit's time), or the epoch.
func sourceDate() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	s, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", v, err)
	}
	return time.Unix(s, 0).UTC(), nil
}
