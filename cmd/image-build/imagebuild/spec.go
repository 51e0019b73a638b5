// Package imagebuild builds poolguard's container images without a
// container engine: static Go binaries, one reproducible layer per platform
// and an OCI image index, written as an OCI archive or pushed to a registry
// with go-containerregistry.
//
// Reproducible means the same sources, Go toolchain and Spec give the same
// index digest: binaries are built with -trimpath and without build IDs or
// VCS stamps, layer entries are sorted with fixed times, modes and owners,
// and every timestamp in the image is Spec.Created.
package imagebuild

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Platforms are the platforms poolguard's images are built for.
var Platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// Binary is a Go main package built into the image.
type Binary struct {
	// Name is the file name at the image's root ("/Name"): the path the
	// chart's commands name.
	Name string
	// Package is the package to build, as go build takes it, relative to
	// Spec.ModuleDir (e.g. "./webhook/cmd/poolguard-webhook").
	Package string
}

// Spec describes one image index: the same binaries and configuration for
// every platform.
type Spec struct {
	// Name is the reference the archive records for the image (what
	// `ctr images import` names it), e.g. "ghcr.io/poolguard/poolguard:0.1.0".
	Name string
	// ModuleDir is the Go module the binaries are built from.
	ModuleDir string
	// Binaries are built for each platform and put at the image's root.
	Binaries []Binary
	// Platforms the index holds, in this order.
	Platforms []v1.Platform
	// Entrypoint of the image config; the chart sets each container's
	// command, so this is only the default of a bare `run`.
	Entrypoint []string
	// UID and GID the image runs as by default, also listed in /etc/passwd
	// and /etc/group under UserName.
	UID, GID int
	UserName string
	// Version is stamped into the binaries (-X main.version) and labelled.
	Version string
	// Revision is the source's VCS revision, labelled.
	Revision string
	// Source is the URL of the source repository, labelled.
	Source string
	// Title and Description are labelled.
	Title, Description string
	// Created is every timestamp in the image: config, history and layer
	// entries. A fixed value (SOURCE_DATE_EPOCH, the commit's time) keeps
	// the digest independent of when the build runs.
	Created time.Time
}

// Labels returns the image's OCI labels (also the index's annotations).
func (s Spec) Labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       s.Title,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
	}
	for k, v := range l {
		if v == "" {
			delete(l, k)
		}
	}
	return l
}

// User is the config's user field, numeric so that the kubelet can check
// runAsNonRoot without reading /etc/passwd.
func (s Spec) User() string {
	return fmt.Sprintf("%d:%d", s.UID, s.GID)
}

// Poolguard is the image the chart runs: the webhook (Deployment, as 65532),
// the CNI installer (DaemonSet, as root to write host directories: the chart
// overrides the user) and the IPAM plugin the installer copies to the node.
func Poolguard(moduleDir, ref, version, revision, source string, created time.Time) Spec {
	return Spec{
		Name:      ref,
		ModuleDir: moduleDir,
		Binaries: []Binary{
			{Name: "poolguard-webhook", Package: "./webhook/cmd/poolguard-webhook"},
			{Name: "poolguard-ipam", Package: "./cni/cmd/poolguard-ipam"},
			{Name: "poolguard-cni-install", Package: "./cni/cmd/poolguard-cni-install"},
		},
		Platforms:   Platforms,
		Entrypoint:  []string{"/poolguard-webhook"},
		UID:         65532,
		GID:         65532,
		UserName:    "nonroot",
		Version:     version,
		Revision:    revision,
		Source:      source,
		Title:       "poolguard",
		Description: "poolguard's admission webhook, CNI IPAM plugin and node installer",
		Created:     created,
	}
}

// PauseName is the name the pause image is archived under: the local test
// cluster imports it into containerd and names it as the sandbox image.
const PauseName = "localhost/poolguard/pause:3.10"

// Pause is a minimal sandbox ("pause") image for a local test cluster, so
// that nothing is pulled from the internet. It runs as 65535, like the
// upstream pause image.
func Pause(moduleDir, revision, source string, created time.Time) Spec {
	return Spec{
		Name:        PauseName,
		ModuleDir:   moduleDir,
		Binaries:    []Binary{{Name: "pause", Package: "./cmd/pause"}},
		Platforms:   Platforms,
		Entrypoint:  []string{"/pause"},
		UID:         65535,
		GID:         65535,
		UserName:    "pause",
		Version:     "3.10",
		Revision:    revision,
		Source:      source,
		Title:       "poolguard pause",
		Description: "sandbox image for poolguard's local test cluster",
		Created:     created,
	}
}
