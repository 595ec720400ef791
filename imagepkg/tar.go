package imagepkg

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Bounds on a payload's tar.
const (
	// MaxTarEntries bounds the entries (files, directories, symlinks) of a payload.
	MaxTarEntries = 100_000
	// MaxTarSize bounds the total size of the regular files in a payload.
	MaxTarSize = MaxPayloadSize
	// MaxTarPathLength bounds an entry's path, in bytes.
	MaxTarPathLength = 1024
	// MaxSymlinkTargetLength bounds a symlink's target, in bytes.
	MaxSymlinkTargetLength = 1024
)

// Pack writes the payload tar of the tree in fsys to w and returns its description. The tar is
// deterministic: entries in lexical order of their slash-separated paths (so a directory comes
// before what it holds), modification times zero (the Unix epoch), owner and group 0 with no
// names, the permission bits kept (setuid, setgid and sticky bits are refused), directories
// named with a trailing slash. Only regular files, directories and symlinks whose targets are
// relative and stay inside the tree are allowed. Names that fit are written as POSIX ustar,
// longer ones with PAX headers. fsys must implement fs.ReadLinkFS if it holds symlinks.
func Pack(w io.Writer, fsys fs.FS) (Payload, error) {
	var paths []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." {
			if len(paths) >= MaxTarEntries {
				return fmt.Errorf("more than %d entries", MaxTarEntries)
			}
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return Payload{}, fmt.Errorf("packing: %w", err)
	}
	slices.Sort(paths)
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	tw := tar.NewWriter(cw)
	var total int64
	for _, p := range paths {
		if len(p) > MaxTarPathLength {
			return Payload{}, fmt.Errorf("packing %s: the path is longer than %d bytes", truncate(p), MaxTarPathLength)
		}
		st, err := fs.Lstat(fsys, p)
		if err != nil {
			return Payload{}, fmt.Errorf("packing: %w", err)
		}
		mode := st.Mode()
		if mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			return Payload{}, fmt.Errorf("packing %s: setuid, setgid and sticky bits are not allowed", p)
		}
		hdr := &tar.Header{Name: p, Mode: int64(mode.Perm()), ModTime: time.Unix(0, 0)}
		switch {
		case mode.IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
			total += st.Size()
			if total > MaxTarSize {
				return Payload{}, fmt.Errorf("packing: the files total more than %d bytes", int64(MaxTarSize))
			}
		case mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
		case mode&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(fsys, p)
			if err != nil {
				return Payload{}, fmt.Errorf("packing: %w", err)
			}
			if err := checkSymlink(p, target); err != nil {
				return Payload{}, fmt.Errorf("packing: %w", err)
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		default:
			return Payload{}, fmt.Errorf("packing %s: %v files are not allowed; only regular files, directories and symlinks", p, mode.Type())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return Payload{}, fmt.Errorf("packing %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := copyFile(tw, fsys, p, hdr.Size); err != nil {
				return Payload{}, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return Payload{}, fmt.Errorf("packing: %w", err)
	}
	return Payload{SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n, Format: PayloadFormatTar}, nil
}

// PackDir packs the directory dir (see Pack), reading it through an os.Root so that nothing
// outside it is read.
func PackDir(w io.Writer, dir string) (Payload, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Payload{}, err
	}
	defer root.Close()
	return Pack(w, root.FS())
}

func copyFile(w io.Writer, fsys fs.FS, p string, size int64) error {
	f, err := fsys.Open(p)
	if err != nil {
		return fmt.Errorf("packing: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("packing %s: %w", p, err)
	}
	if n != size {
		return fmt.Errorf("packing %s: it changed size while it was read", p)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// checkSymlink checks that the symlink at name (slash-separated, relative to the root) points
// inside the root by a relative target.
func checkSymlink(name, target string) error {
	switch {
	case target == "":
		return fmt.Errorf("symlink %s has an empty target", name)
	case len(target) > MaxSymlinkTargetLength:
		return fmt.Errorf("symlink %s: the target is longer than %d bytes", name, MaxSymlinkTargetLength)
	case strings.HasPrefix(target, "/"):
		return fmt.Errorf("symlink %s -> %s: absolute targets are not allowed", name, truncate(target))
	case strings.ContainsRune(target, 0):
		return fmt.Errorf("symlink %s: the target contains a NUL", name)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink %s -> %s points outside the package", name, truncate(target))
	}
	return nil
}

// Extract extracts the payload into the directory dst, which must exist and be empty, checking
// the payload's digest as it reads (see ExtractTar). Files are written before the digest is
// known to be right: on any error, discard dst. Call it only after Verify has succeeded.
func (p *Package) Extract(dst string) error {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(p.Payload(), h)}
	if err := ExtractTar(cr, dst); err != nil {
		// A digest mismatch explains a malformed tar best: report it if the rest reads.
		if _, derr := io.Copy(io.Discard, cr); derr == nil {
			if derr := p.checkDigest(h, cr.n); derr != nil {
				return derr
			}
		}
		return &Error{Region: RegionPayload, Err: err}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return errorf(RegionPayload, "reading it: %v", err)
	}
	return p.checkDigest(h, cr.n)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// ExtractTar extracts the tar read from r into the directory dst, which must exist and be empty.
// It refuses absolute paths, ".." and other unclean paths, entries under a symlink, symlinks
// whose targets are absolute or leave dst, duplicate entries, hard links, device nodes, FIFOs and
// every other entry type but regular files, directories and symlinks, and setuid, setgid and
// sticky bits. It bounds the number of entries (MaxTarEntries) and the total size of the files
// (MaxTarSize). All writes go through an os.Root at dst. Permissions are set as recorded, those of
// directories last.
func ExtractTar(r io.Reader, dst string) error {
	entries, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("extracting: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("extracting: %s is not empty", dst)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("extracting: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	seen := map[string]bool{}
	symlinks := map[string]bool{}
	var total int64
	for count := 0; ; count++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("extracting: reading the tar: %w", err)
		}
		if count >= MaxTarEntries {
			return fmt.Errorf("extracting: more than %d entries", MaxTarEntries)
		}
		name := hdr.Name
		if hdr.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
		}
		if err := checkEntryName(name); err != nil {
			return fmt.Errorf("extracting: %w", err)
		}
		if seen[name] {
			return fmt.Errorf("extracting: %s appears twice", name)
		}
		seen[name] = true
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if symlinks[dir] {
				return fmt.Errorf("extracting: %s is under the symlink %s", name, dir)
			}
		}
		for k := range hdr.PAXRecords {
			if k != "path" && k != "linkpath" {
				// Sparse files among them: a small archive must not expand to a large tree.
				return fmt.Errorf("extracting: %s has the PAX record %q; only path and linkpath are allowed", name, truncate(k))
			}
		}
		if hdr.Mode&^0o777 != 0 || hdr.Mode < 0 {
			return fmt.Errorf("extracting: %s has mode %o; only permission bits are allowed", name, hdr.Mode)
		}
		perm := fs.FileMode(hdr.Mode)
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("extracting %s: %w", name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			total += hdr.Size
			if total > MaxTarSize {
				return fmt.Errorf("extracting: the files total more than %d bytes", int64(MaxTarSize))
			}
			if err := extractFile(root, name, perm, tr, hdr.Size); err != nil {
				return err
			}
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !(errors.Is(err, fs.ErrExist) && isDir(root, name)) {
				return fmt.Errorf("extracting %s: %w", name, err)
			}
			dirs = append(dirs, dirMode{name, perm})
		case tar.TypeSymlink:
			if err := checkSymlink(name, hdr.Linkname); err != nil {
				return fmt.Errorf("extracting: %w", err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("extracting %s: %w", name, err)
			}
			symlinks[name] = true
		default:
			return fmt.Errorf("extracting %s: entry type %q is not allowed; only regular files, directories and symlinks", name, hdr.Typeflag)
		}
	}
	// Deepest first, so that a read-only directory is set after what it holds.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := chmodDir(root, dirs[i].name, dirs[i].mode); err != nil {
			return fmt.Errorf("extracting %s: %w", dirs[i].name, err)
		}
	}
	return nil
}

// checkEntryName checks a tar entry's path: relative, clean, slash-separated, bounded.
func checkEntryName(name string) error {
	switch {
	case name == "" || name == ".":
		return fmt.Errorf("an entry has an empty name")
	case len(name) > MaxTarPathLength:
		return fmt.Errorf("an entry's path is longer than %d bytes", MaxTarPathLength)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("%s: absolute paths are not allowed", truncate(name))
	case !fs.ValidPath(name) || strings.ContainsRune(name, '\\'):
		return fmt.Errorf("%q: paths must be clean and relative, without \"..\"", truncate(name))
	}
	return nil
}

func extractFile(root *os.Root, name string, perm fs.FileMode, r io.Reader, size int64) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("extracting %s: %w", name, err)
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extracting %s: %w", name, err)
	}
	return nil
}

func isDir(root *os.Root, name string) bool {
	st, err := root.Lstat(name)
	return err == nil && st.IsDir()
}

func chmodDir(root *os.Root, name string, perm fs.FileMode) error {
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("not a directory")
	}
	return d.Chmod(perm)
}
