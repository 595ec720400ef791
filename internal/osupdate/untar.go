package osupdate

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Limits on what Untar writes.
const (
	MaxUnpackedSize    = 16 << 30 // bytes of file contents
	MaxUnpackedEntries = 1 << 20
	maxNameLen         = 4096
)

// Untar is the default Config.Unpack: it extracts a tar archive, gzip-compressed or not, into
// dir, which is empty. Only directories, regular (not sparse) files and symbolic links are
// allowed; names are relative and stay inside dir (no "..", and nothing is written through a
// symbolic link that leads out of dir); permission bits are kept, set-id and sticky bits
// dropped. A file or link named twice, more than MaxUnpackedEntries entries or more than
// MaxUnpackedSize bytes are errors.
func Untar(ctx context.Context, bundle, dir string) error {
	f, err := os.Open(bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("unpacking %s: %w", bundle, err)
		}
		defer zr.Close()
		r = zr
	}
	if err := untar(ctx, tar.NewReader(r), root); err != nil {
		return fmt.Errorf("unpacking %s: %w", bundle, err)
	}
	return nil
}

func untar(ctx context.Context, tr *tar.Reader, root *os.Root) error {
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	var total int64
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n >= MaxUnpackedEntries {
			return fmt.Errorf("more than %d entries", MaxUnpackedEntries)
		}
		name, err := entryName(h.Name)
		if err != nil {
			return err
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return fmt.Errorf("entry %q: sparse files are not allowed", h.Name)
			}
		}
		mode := fs.FileMode(h.Mode).Perm()
		if name == "." {
			if h.Typeflag != tar.TypeDir {
				return fmt.Errorf("entry %q: the root must be a directory", h.Name)
			}
			continue
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil {
				if st, serr := root.Lstat(name); serr != nil || !st.IsDir() {
					return fmt.Errorf("entry %q: %w", h.Name, err)
				}
				// Made earlier as a parent of another entry.
			}
			dirs = append(dirs, dirMode{name, mode})
		case tar.TypeReg:
			if total += h.Size; h.Size < 0 || total > MaxUnpackedSize {
				return fmt.Errorf("entry %q: more than %d bytes in all", h.Name, int64(MaxUnpackedSize))
			}
			out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			_, err = io.Copy(out, tr)
			if err == nil {
				err = out.Chmod(mode)
			}
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			if h.Linkname == "" || len(h.Linkname) > maxNameLen || strings.ContainsRune(h.Linkname, 0) {
				return fmt.Errorf("entry %q: bad link target %q", h.Name, h.Linkname)
			}
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("entry %q: type %q is not a directory, file or symbolic link", h.Name, h.Typeflag)
		}
	}
	// Directory modes last, so that a read-only directory could be filled first.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := root.Chmod(dirs[i].name, dirs[i].mode); err != nil {
			return fmt.Errorf("entry %q: %w", dirs[i].name, err)
		}
	}
	return nil
}

var errBadName = errors.New("bad entry name")

// entryName cleans a tar entry's name into a relative slash path inside the root.
func entryName(name string) (string, error) {
	if name == "" || len(name) > maxNameLen || strings.ContainsRune(name, 0) || strings.Contains(name, `\`) {
		return "", fmt.Errorf("%w %q", errBadName, name)
	}
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w %q: outside the bundle", errBadName, name)
	}
	return clean, nil
}
