package imagebuild

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Build compiles spec's binaries for each platform under workDir and
// returns the image index. The layers are files in workDir, read again
// when the index is written or pushed: keep workDir until then.
func Build(ctx context.Context, spec Spec, workDir string) (v1.ImageIndex, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, 0, len(spec.Platforms))
	for _, p := range spec.Platforms {
		img, err := buildImage(ctx, spec, p, workDir)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	// The labels on the index too: registries show an index's annotations
	// (GHCR links the package to its source through them).
	idx, ok := mutate.Annotations(idx, spec.Labels()).(v1.ImageIndex)
	if !ok {
		return nil, errors.New("annotating the index did not return an index")
	}
	return idx, nil
}

// buildImage builds one platform's image: its binaries, one layer, and a
// config running as spec's user.
func buildImage(ctx context.Context, spec Spec, p v1.Platform, workDir string) (v1.Image, error) {
	dir := filepath.Join(workDir, p.OS+"_"+p.Architecture)
	if err := buildBinaries(ctx, spec, p, dir); err != nil {
		return nil, err
	}
	layer, err := writeLayer(dir+".tar.gz", layerEntries(spec, dir), spec.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: spec.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		// mutate.Append fills in the diff IDs, not the type, which the
		// image spec requires.
		RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       spec.User(),
			Entrypoint: spec.Entrypoint,
			WorkingDir: "/",
			Labels:     spec.Labels(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "poolguard image-build",
			Comment:   "static Go binaries",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	return img, nil
}

func (s Spec) validate() error {
	switch {
	case len(s.Binaries) == 0:
		return errors.New("no binaries to build")
	case len(s.Platforms) == 0:
		return errors.New("no platforms to build for")
	case s.Created.IsZero():
		// The zero time is legal but almost certainly a forgotten field:
		// say so rather than stamp year 1.
		return errors.New("no creation time: set Created (e.g. from SOURCE_DATE_EPOCH)")
	case s.ModuleDir == "":
		return errors.New("no module directory")
	}
	return nil
}
