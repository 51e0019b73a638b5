package imagebuild

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file or directory of a layer.
type entry struct {
	name string // relative to the root, no leading slash
	dir  bool
	mode int64
	// exactly one of data or path gives a file's content
	data []byte
	path string
}

// layerEntries lists what the image holds: the binaries, 0755 at the root,
// and a passwd and group naming root and the image's user (for tools that
// map IDs to names; nothing in poolguard reads them).
func layerEntries(spec Spec, binDir string) []entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/nonexistent:/sbin/nologin\n",
		spec.UserName, spec.UID, spec.GID, spec.UserName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", spec.UserName, spec.GID)
	es := []entry{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
	}
	for _, b := range spec.Binaries {
		es = append(es, entry{name: b.Name, mode: 0o755, path: filepath.Join(binDir, b.Name)})
	}
	return es
}

// writeLayer writes entries as a gzipped tar to path and returns it as a
// layer. Everything that could vary between builds is fixed: entries are
// sorted by name, owned by 0:0 with no owner names, stamped with created,
// in the USTAR format (no access or change times); gzip writes no name or
// time in its header. It is compressed once here, so that computing
// digests and writing the archive never compress again.
func writeLayer(path string, entries []entry, created time.Time) (v1.Layer, error) {
	es := append([]entry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })

	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating layer: %w", err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range es {
		if err := writeEntry(tw, e, created); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("closing gzip: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	l, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", path, err)
	}
	return l, nil
}

func writeEntry(tw *tar.Writer, e entry, created time.Time) error {
	h := &tar.Header{
		Name:    e.name,
		Mode:    e.mode,
		ModTime: created.UTC().Truncate(time.Second),
		Format:  tar.FormatUSTAR,
	}
	if e.dir {
		h.Typeflag = tar.TypeDir
		return writeHeader(tw, h)
	}
	h.Typeflag = tar.TypeReg
	if e.path == "" {
		h.Size = int64(len(e.data))
		if err := writeHeader(tw, h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("writing %s: %w", e.name, err)
		}
		return nil
	}
	src, err := os.Open(e.path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", e.path, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", e.path, err)
	}
	h.Size = st.Size()
	if err := writeHeader(tw, h); err != nil {
		return err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("writing %s: %w", e.name, err)
	}
	return nil
}

func writeHeader(tw *tar.Writer, h *tar.Header) error {
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar header of %s: %w", h.Name, err)
	}
	return nil
}
