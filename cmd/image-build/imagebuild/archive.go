package imagebuild

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations naming the image in an archive's index.json, as containerd
// writes them when it imports a `docker save` tarball: `ctr images import`
// names the image after the first, OCI tools read the second (a tag).
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// WriteArchive writes idx as an OCI image layout in a tar file at path
// (what `ctr images import` and `skopeo copy oci-archive:` read), naming it
// ref. The archive is reproducible like the image: sorted entries, fixed
// times and modes.
func WriteArchive(path string, idx v1.ImageIndex, ref string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".layout-")
	if err != nil {
		return fmt.Errorf("creating the layout directory: %w", err)
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationImageName: tag.Name(),
		annotationRefName:   tag.TagStr(),
	})); err != nil {
		return fmt.Errorf("writing the index to the layout: %w", err)
	}
	tmp := path + ".tmp"
	if err := tarDir(tmp, dir); err != nil {
		_ = os.Remove(tmp) // the write already failed; report that
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming the archive: %w", err)
	}
	return nil
}

// tarDir writes the tree under dir into a tar file, entries sorted, owned
// by 0:0, dated the epoch, directories 0755 and files 0644.
func tarDir(path, dir string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the layout: %w", err)
	}
	sort.Strings(names)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating the archive: %w", err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range names {
		if err := addFile(tw, dir, p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("closing the archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	return nil
}

func addFile(tw *tar.Writer, dir, p string) error {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return fmt.Errorf("naming %s: %w", p, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if st.IsDir() {
		h.Name += "/"
		h.Typeflag, h.Mode = tar.TypeDir, 0o755
		return writeHeader(tw, h)
	}
	h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, st.Size()
	if err := writeHeader(tw, h); err != nil {
		return err
	}
	src, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer src.Close()
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("archiving %s: %w", rel, err)
	}
	return nil
}
