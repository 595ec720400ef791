package appinstall

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Rollback makes the component's previous image current again, because the current one failed
// (the agent calls it when the new version crashes as it starts, with the reason). The failed
// image is recorded with the reason, deleted, and not installed again until another image has
// been (except by a sideload). It refuses, changing nothing, if there is no previous image
// (ErrNoPrevious) or if the previous image claims a peripheral that another application now
// holds (*ConflictError). The component's data directory is not touched.
func (a *Apps) Rollback(ctx context.Context, componentID, reason string) (RolledBack, error) {
	a.op.Lock()
	defer a.op.Unlock()
	if err := ctx.Err(); err != nil {
		return RolledBack{}, err
	}
	st := a.state()
	c := st.Components[componentID]
	switch {
	case c == nil:
		return RolledBack{}, fmt.Errorf("rolling back %s: %w", componentID, ErrNotInstalled)
	case c.Previous == nil:
		return RolledBack{}, fmt.Errorf("rolling back %s (%s): %w", c.Current.Manifest.Name, componentID, ErrNoPrevious)
	}
	if !exists(a.imageDir(c.Previous.ID)) {
		return RolledBack{}, fmt.Errorf("rolling back %s: the previous image %s is missing from %s", componentID, c.Previous.ID, a.imageDir(""))
	}
	if err := conflicts(st, componentID, c.Previous.Manifest); err != nil {
		return RolledBack{}, fmt.Errorf("rolling back %s to %s: %w", componentID, c.Previous.Version, err)
	}
	if err := a.ensureDataDir(componentID); err != nil {
		return RolledBack{}, fmt.Errorf("rolling back %s: %w", componentID, err)
	}
	reason = cut(reason, MaxReasonLength)
	failed := c.Current
	failed.Manifest, failed.At = nil, a.cfg.Now().UTC()
	next := st.clone()
	next.Components[componentID] = &component{Current: *c.Previous, Status: StatusRolledBack, Failed: &failed, Reason: reason}
	if err := a.save(next, "rolled-back"); err != nil {
		return RolledBack{}, fmt.Errorf("rolling back %s: %w", componentID, err)
	}
	a.cfg.Logger.Warn("application rolled back", "component", componentID, "name", c.Previous.Manifest.Name,
		"from", c.Current.Version, "to", c.Previous.Version, "reason", reason)
	a.gc()
	return RolledBack{ComponentID: componentID, From: c.Current.clone(), To: c.Previous.clone(), Reason: reason}, nil
}

// Remove uninstalls the component: its images are deleted, and its data too if purgeData is
// set; otherwise the data directory stays, for the component's next install.
func (a *Apps) Remove(componentID string, purgeData bool) error {
	a.op.Lock()
	defer a.op.Unlock()
	st := a.state()
	if st.Components[componentID] == nil {
		return fmt.Errorf("removing %s: %w", componentID, ErrNotInstalled)
	}
	next := st.clone()
	delete(next.Components, componentID)
	if purgeData {
		next.Purge = append(next.Purge, componentID)
	}
	if err := a.save(next, "removed"); err != nil {
		return fmt.Errorf("removing %s: %w", componentID, err)
	}
	a.cfg.Logger.Info("application removed", "component", componentID, "purge_data", purgeData)
	a.gc()
	if err := a.finishPurges(); err != nil {
		return fmt.Errorf("removing %s: %w", componentID, err)
	}
	return nil
}

// finishPurges deletes the data directories of components removed with their data.
func (a *Apps) finishPurges() error {
	st := a.state()
	if len(st.Purge) == 0 {
		return nil
	}
	for _, id := range st.Purge {
		if err := removeTree(a.dataDir(id)); err != nil {
			return fmt.Errorf("deleting the data of %s: %w", id, err)
		}
	}
	if err := syncDir(a.dataDir("")); err != nil {
		return err
	}
	next := st.clone()
	next.Purge = nil
	return a.save(next, "purged")
}

// ensureDataDir creates the component's data directory if it is missing.
func (a *Apps) ensureDataDir(componentID string) error {
	dir := a.dataDir(componentID)
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	if err := syncDir(a.dataDir("")); err != nil {
		return err
	}
	a.step("data")
	return nil
}

// recover removes what a crash left: the state file's temporary files, images no component
// has (staging directories among them), and data whose purge had started.
func (a *Apps) recover() error {
	ents, err := os.ReadDir(a.cfg.Dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+StateFile+".tmp-") {
			if err := os.Remove(filepath.Join(a.cfg.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := a.finishPurges(); err != nil {
		return err
	}
	for _, id := range a.state().ids() {
		if err := a.ensureDataDir(id); err != nil {
			return err
		}
	}
	return a.gcErr()
}

// gc deletes every image no component has; a failure is logged and retried by the next
// operation or Open.
func (a *Apps) gc() {
	if err := a.gcErr(); err != nil {
		a.cfg.Logger.Warn("deleting unused application images", "err", err)
	}
}

func (a *Apps) gcErr() error {
	images := a.imageDir("")
	ents, err := os.ReadDir(images)
	if err != nil {
		return err
	}
	keep := a.state().images()
	removed := false
	for _, e := range ents {
		if slices.Contains(keep, e.Name()) {
			continue
		}
		if err := removeTree(a.imageDir(e.Name())); err != nil {
			return err
		}
		removed = true
		a.step("gc")
	}
	if removed {
		return syncDir(images)
	}
	return nil
}

// removeTree deletes the tree at path, making its read-only directories writable first. It
// never follows symlinks. A missing path is not an error.
func removeTree(path string) error {
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		return nil
	}
	_ = walkDirs(path, func(dir string) { _ = os.Chmod(dir, 0o700) })
	return os.RemoveAll(path)
}

// walkDirs calls fn for every directory in the tree at root, before reading it, without
// following symlinks.
func walkDirs(root string, fn func(dir string)) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			fn(path)
		}
		return nil
	})
}

// cut shortens s to at most n bytes of valid UTF-8.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
