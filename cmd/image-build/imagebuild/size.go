package imagebuild

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CompressedSize is what pulling every platform of idx transfers: the
// compressed layers, configs and manifests. A node pulls one platform, about
// this divided by the number of platforms.
func CompressedSize(idx v1.ImageIndex) (int64, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return 0, fmt.Errorf("index manifest: %w", err)
	}
	var total int64
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return 0, fmt.Errorf("image %s: %w", d.Digest, err)
		}
		mf, err := img.Manifest()
		if err != nil {
			return 0, fmt.Errorf("manifest of %s: %w", d.Digest, err)
		}
		total += d.Size + mf.Config.Size
		for _, l := range mf.Layers {
			total += l.Size
		}
	}
	return total, nil
}
