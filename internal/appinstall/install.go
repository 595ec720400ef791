package appinstall

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rampart-iot/rampart/imagepkg"
)

// Verify is the caller's trust decision about an opened package, before anything is written:
// for the agent, that the update metadata names it and its hashes matched, and that its
// signatures meet the threshold with keys the device trusts (Signed). An error refuses the
// package.
type Verify func(p *imagepkg.Package) error

// Signed returns a Verify that accepts a package signed by at least threshold (at least 1) of
// the trusted keys; build them with imagepkg.TrustedKeys, which adds the development key only
// in development mode.
func Signed(trusted []crypto.PublicKey, threshold int) Verify {
	return func(p *imagepkg.Package) error {
		_, err := p.Verify(trusted, max(threshold, 1))
		return err
	}
}

// Options qualify an Install.
type Options struct {
	// Origin says who asked for the image; the zero value is OriginUpdate.
	Origin Origin
}

// Install installs the application image package at pkgPath beside the component's current
// image, and makes it current once it is completely in place; the image it replaces becomes the
// previous one, kept for Rollback, and the one before is deleted. It refuses, changing nothing:
// a package verify refuses (ErrUnverified); one that is not an application (ErrWrongKind) or
// whose manifest does not hold; a version not newer than the installed one unless
// opts.Origin allows it (ErrNotNewer); the image the component was rolled back from, until
// another image has been installed, unless sideloaded (ErrFailedImage); an application that
// claims a peripheral another installed application holds (*ConflictError); and a payload
// whose digest does not match the verified metadata. Installing the current image again
// changes nothing and succeeds. The component's data directory is created if missing and never
// touched otherwise.
func (a *Apps) Install(ctx context.Context, pkgPath string, verify Verify, opts Options) (Installed, error) {
	a.op.Lock()
	defer a.op.Unlock()
	in, err := a.install(ctx, pkgPath, verify, opts)
	if err != nil {
		return Installed{}, fmt.Errorf("installing %s: %w", filepath.Base(pkgPath), err)
	}
	return in, nil
}

func (a *Apps) install(ctx context.Context, pkgPath string, verify Verify, opts Options) (Installed, error) {
	origin := opts.Origin
	if origin == "" {
		origin = OriginUpdate
	}
	if !slices.Contains(origins, origin) {
		return Installed{}, fmt.Errorf("unknown origin %q", origin)
	}
	if verify == nil {
		return Installed{}, fmt.Errorf("%w: no Verify given", ErrUnverified)
	}
	if err := ctx.Err(); err != nil {
		return Installed{}, err
	}
	f, err := os.Open(pkgPath)
	if err != nil {
		return Installed{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Installed{}, err
	}
	if !fi.Mode().IsRegular() {
		return Installed{}, fmt.Errorf("%s is not a regular file", pkgPath)
	}
	var r io.ReaderAt = ctxReaderAt{ctx, f}
	if a.cfg.wrap != nil {
		r = a.cfg.wrap(r)
	}
	p, err := imagepkg.Open(r, fi.Size())
	if err != nil {
		return Installed{}, err
	}
	if err := verify(p); err != nil {
		return Installed{}, fmt.Errorf("%w: %w", ErrUnverified, err)
	}
	md := p.Metadata
	if md.Kind != imagepkg.KindApplication {
		return Installed{}, fmt.Errorf("%w: its kind is %q", ErrWrongKind, md.Kind)
	}
	m := md.Manifest
	switch {
	case m == nil:
		return Installed{}, fmt.Errorf("the package has no application manifest")
	case m.Validate() != nil:
		return Installed{}, fmt.Errorf("the application manifest: %w", m.Validate())
	case m.HasReferences():
		return Installed{}, fmt.Errorf("the application manifest names hardware-definition peripherals; they are resolved when the package is built")
	case m.ComponentId != md.ComponentID:
		return Installed{}, fmt.Errorf("the manifest's ComponentId %s is not the package's component %s", m.ComponentId, md.ComponentID)
	}
	version, err := imagepkg.ParseVersion(md.ImageVersion)
	if err != nil {
		return Installed{}, err
	}

	cid, img := md.ComponentID, Image{ID: md.ImageID, Version: md.ImageVersion, SHA256: md.Payload.SHA256,
		Development: md.Development, Origin: origin, At: a.cfg.Now().UTC(), Manifest: m.Clone()}
	if slices.Contains(a.state().Purge, cid) {
		if err := a.finishPurges(); err != nil {
			return Installed{}, err
		}
	}
	st := a.state()
	cur := st.Components[cid]
	if owner, have := st.owner(img.ID); owner != "" && (owner != cid || have.SHA256 != img.SHA256) {
		return Installed{}, fmt.Errorf("%w: image %s is installed for component %s with payload %s", ErrImageID, img.ID, owner, have.SHA256)
	}
	if cur != nil && cur.Current.ID == img.ID {
		return cur.installed(cid), nil
	}
	if cur == nil && len(st.Components) >= MaxComponents {
		return Installed{}, fmt.Errorf("%d applications are installed; the limit is %d", len(st.Components), MaxComponents)
	}
	if cur != nil {
		if cur.Failed != nil && cur.Failed.ID == img.ID && origin != OriginSideload {
			return Installed{}, fmt.Errorf("%w: image %s (%s) failed (%s); a different image is needed", ErrFailedImage, img.ID, img.Version, cur.Reason)
		}
		have, err := imagepkg.ParseVersion(cur.Current.Version)
		if err != nil {
			return Installed{}, err
		}
		if origin == OriginUpdate && version.Compare(have) <= 0 {
			return Installed{}, fmt.Errorf("%w: %s is installed, and %s is offered by an update that is neither a deployment nor a sideload", ErrNotNewer, cur.Current.Version, img.Version)
		}
	}
	if err := conflicts(st, cid, m); err != nil {
		return Installed{}, err
	}

	// Put the image in place beside the current one: a rollback target already is.
	if cur == nil || cur.Previous == nil || cur.Previous.ID != img.ID || !exists(a.imageDir(img.ID)) {
		if err := a.place(p, img); err != nil {
			return Installed{}, err
		}
	}
	if err := a.ensureDataDir(cid); err != nil {
		return Installed{}, err
	}
	// The switch.
	next := st.clone()
	nc := &component{Current: img, Status: StatusInstalled}
	if cur != nil {
		prev := cur.Current
		nc.Previous = &prev
	}
	next.Components[cid] = nc
	if err := a.save(next, "switched"); err != nil {
		return Installed{}, err
	}
	from := ""
	if cur != nil {
		from = cur.Current.Version
	}
	a.cfg.Logger.Info("application installed", "component", cid, "name", m.Name, "image", img.ID,
		"version", img.Version, "from", from, "origin", origin)
	a.gc()
	return nc.installed(cid), nil
}

// state returns the saved state; only the goroutine holding a.op may change it.
func (a *Apps) state() *state {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st
}

// place extracts the verified package's payload into images/<image-id>: into a new staging
// directory first, checking the digest as it goes; then it checks the entry point, makes the
// tree read-only, syncs it and renames it into place.
func (a *Apps) place(p *imagepkg.Package, img Image) (err error) {
	images := filepath.Join(a.cfg.Dir, ImagesDir)
	final := a.imageDir(img.ID)
	// No component has this image, so a directory by its name is left from a crash.
	if err := removeTree(final); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(images, img.ID+".tmp-")
	if err != nil {
		return err
	}
	a.step("staged")
	defer func() {
		if err != nil {
			_ = removeTree(tmp)
		}
	}()
	if err := p.Extract(tmp); err != nil {
		return err
	}
	a.step("extracted")
	if err := checkEntryPoint(tmp, img.Manifest.EntryPoint); err != nil {
		return err
	}
	if err := seal(tmp); err != nil {
		return fmt.Errorf("sealing the image: %w", err)
	}
	a.step("sealed")
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := syncDir(images); err != nil {
		return err
	}
	a.step("renamed")
	return nil
}

// checkEntryPoint checks that the manifest's entry point is an executable regular file in the
// image at dir (following symlinks inside it only).
func checkEntryPoint(dir, entry string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Stat(strings.TrimPrefix(entry, "/"))
	if err != nil {
		return fmt.Errorf("the entry point %s: %w", entry, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("the entry point %s is not an executable file", entry)
	}
	return nil
}

// seal makes the tree at dir read-only (files 0444, or 0555 if executable; directories 0555)
// and syncs every file and directory in it.
func seal(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, path)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			mode := os.FileMode(0o444)
			if fi.Mode()&0o111 != 0 {
				mode = 0o555
			}
			if err := os.Chmod(path, mode); err != nil {
				return err
			}
			return syncFile(path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range slices.Backward(dirs) {
		if err := os.Chmod(d, 0o555); err != nil {
			return err
		}
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(path string) error { return syncFile(path) }

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// ctxReaderAt stops reading the package once ctx is done.
type ctxReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (c ctxReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.ReadAt(b, off)
}
