package imagebuild_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"poolguard.dev/poolguard/cmd/image-build/imagebuild"
)

// TestPushAndPull pushes the image to a registry served on loopback, pulls
// it back and checks what the chart relies on: every platform, the user
// the webhook Deployment runs as, the paths the chart's commands name
// (static executables of the right architecture), and the labels.
func TestPushAndPull(t *testing.T) {
	idx := sharedIndex(t)
	want := chartExpectations(t)

	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	ref := strings.TrimPrefix(reg.URL, "http://") + "/poolguard/poolguard:" + testVersion
	pushed, err := imagebuild.Push(context.Background(), idx, ref)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if pushed.DigestStr() != digest(t, idx).String() {
		t.Fatalf("Push reported %s, the index is %s", pushed.DigestStr(), digest(t, idx))
	}

	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(tag)
	if err != nil {
		t.Fatalf("pulling the index: %v", err)
	}
	if got := digest(t, pulled); got != digest(t, idx) {
		t.Fatalf("pulled index %s, pushed %s", got, digest(t, idx))
	}
	im, err := pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %q, want %q", im.MediaType, types.OCIImageIndex)
	}
	checkLabels(t, "index annotations", im.Annotations)

	var platforms []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		platforms = append(platforms, d.Platform.String())
		img, err := pulled.Image(d.Digest)
		if err != nil {
			t.Fatalf("pulling %s: %v", d.Platform, err)
		}
		t.Run(d.Platform.String(), func(t *testing.T) {
			checkImage(t, img, *d.Platform, want)
		})
	}
	var wantPlatforms []string
	for _, p := range testPlatforms(t) {
		wantPlatforms = append(wantPlatforms, p.String())
	}
	sort.Strings(platforms)
	sort.Strings(wantPlatforms)
	if strings.Join(platforms, ",") != strings.Join(wantPlatforms, ",") {
		t.Errorf("platforms %v, want %v", platforms, wantPlatforms)
	}
}

// chart is what the chart's templates expect of the image.
type chart struct {
	// executables are the paths the containers' commands and the
	// installer's --plugin name.
	executables []string
	// uid is the webhook pod's runAsUser, which the image's default user
	// must match so that runAsNonRoot holds without the chart's help.
	uid int
}

// chartExpectations reads them from the templates, so that a chart that
// names another binary or user fails this test rather than a cluster.
func chartExpectations(t *testing.T) chart {
	t.Helper()
	templates := filepath.Join(moduleDir(t), "charts", "poolguard", "templates")
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(templates, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	deployment, daemonset := read("deployment.yaml"), read("cni-daemonset.yaml")
	var c chart
	command := regexp.MustCompile(`(?m)^\s*command:\s*\[\s*(/[^\],\s]+)`)
	for _, m := range command.FindAllStringSubmatch(deployment+daemonset, -1) {
		c.executables = append(c.executables, m[1])
	}
	for _, m := range regexp.MustCompile(`--plugin=(/\S+)`).FindAllStringSubmatch(daemonset, -1) {
		c.executables = append(c.executables, m[1])
	}
	if len(c.executables) < 3 {
		t.Fatalf("found only %v as the chart's executables", c.executables)
	}
	m := regexp.MustCompile(`(?m)^\s*runAsUser:\s*(\d+)`).FindStringSubmatch(deployment)
	if m == nil {
		t.Fatal("no runAsUser in the webhook Deployment")
	}
	c.uid, _ = strconv.Atoi(m[1])
	return c
}

func checkImage(t *testing.T, img v1.Image, p v1.Platform, want chart) {
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != p.OS || cfg.Architecture != p.Architecture {
		t.Errorf("config says %s/%s", cfg.OS, cfg.Architecture)
	}
	uid := strings.SplitN(cfg.Config.User, ":", 2)[0]
	if uid != strconv.Itoa(want.uid) {
		t.Errorf("user %q, want uid %d as the chart's Deployment runs", cfg.Config.User, want.uid)
	}
	if uid == "0" || uid == "" {
		t.Errorf("image runs as root by default (user %q)", cfg.Config.User)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/poolguard-webhook" {
		t.Errorf("entrypoint %q", got)
	}
	if cfg.RootFS.Type != "layers" {
		t.Errorf("rootfs type %q", cfg.RootFS.Type)
	}
	checkLabels(t, "config labels", cfg.Config.Labels)

	files := layerFiles(t, img)
	for _, path := range want.executables {
		f, ok := files[strings.TrimPrefix(path, "/")]
		if !ok {
			t.Errorf("%s: not in the image", path)
			continue
		}
		if f.mode != 0o755 || f.uid != 0 || f.gid != 0 {
			t.Errorf("%s: mode %o owner %d:%d, want 755 0:0", path, f.mode, f.uid, f.gid)
		}
		checkStaticELF(t, path, f.data, p.Architecture)
		if !bytes.Contains(f.data, []byte(testVersion)) {
			t.Errorf("%s: version %s not stamped", path, testVersion)
		}
	}
}

func checkLabels(t *testing.T, what string, got map[string]string) {
	t.Helper()
	for k, v := range map[string]string{
		"org.opencontainers.image.source":   testSource,
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testRevision,
	} {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got[k], v)
		}
	}
}

type file struct {
	mode     int64
	uid, gid int
	data     []byte
}

// layerFiles reads the image's single layer: regular files by name.
func layerFiles(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = file{mode: h.Mode, uid: h.Uid, gid: h.Gid, data: b}
	}
	return files
}

// checkStaticELF checks that b is a Linux executable for arch that needs
// no dynamic loader or shared library: it runs in an image with nothing
// else.
func checkStaticELF(t *testing.T, path string, b []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Errorf("%s: not ELF: %v", path, err)
		return
	}
	defer f.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != machine {
		t.Errorf("%s: machine %v, want %v for %s", path, f.Machine, machine, arch)
	}
	if f.Type != elf.ET_EXEC {
		t.Errorf("%s: ELF type %v, want a (non-PIE) executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has %v: dynamically linked", path, p.Type)
		}
	}
}
