package appinstall_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/appinstall"
)

// TestSideBySide installs v1, then v2 beside it: until v2 is completely in place, v1 stays
// current and whole; after the switch v2 is current and v1 is kept as previous; a rollback
// returns to v1; the application's data survives all of it.
func TestSideBySide(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := pack(t, app{version: "1.0.0"}), pack(t, app{version: "2.0.0", size: 80_000})
	a := open(t, dir)
	in := install(t, a, v1, "")
	if in.Previous != nil || in.Status != appinstall.StatusInstalled || in.Name != "blink" {
		t.Fatalf("first install: %+v", in)
	}
	current(t, a, v1)
	data, ok := a.DataDir(compA)
	if !ok {
		t.Fatal("no data directory")
	}
	dataFile := filepath.Join(data, "counter")
	must(t, os.WriteFile(dataFile, []byte("41"), 0o600))

	// Reopen with a step hook that looks at the store at every durable step of the install.
	var steps []string
	watch := true
	a, err := appinstall.Open(appinstall.Config{Dir: dir, Step: func(step string) {
		if !watch {
			return
		}
		steps = append(steps, step)
		if step == "switched" {
			return
		}
		// Before the switch: v1 is current and complete, v2 is not visible.
		current(t, a, v1)
		if _, ok := a.Path(v2.image); ok {
			t.Errorf("at step %s, v2 is visible before the switch", step)
		}
		if step == "renamed" {
			must(t, sameTree(filepath.Join(dir, "images", v2.image), v2.tree))
		}
	}})
	must(t, err)
	in = install(t, a, v2, "")
	watch = false
	if got, want := strings.Join(steps, " "), "staged extracted sealed renamed switched"; got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
	current(t, a, v2)
	if in.Previous == nil || in.Previous.ID != v1.image || in.Previous.Version != "1.0.0" {
		t.Fatalf("previous after the switch: %+v", in.Previous)
	}
	p1, ok := a.Path(v1.image)
	if !ok {
		t.Fatal("v1 was deleted by the switch")
	}
	must(t, sameTree(p1, v1.tree))

	rb, err := a.Rollback(t.Context(), compA, "exit status 2 within 5 s of start, 3 times")
	must(t, err)
	if rb.From.ID != v2.image || rb.To.ID != v1.image || rb.From.Version != "2.0.0" || rb.To.Version != "1.0.0" || rb.Reason == "" {
		t.Fatalf("rollback: %+v", rb)
	}
	current(t, a, v1)
	in, _ = a.Get(compA)
	if in.Status != appinstall.StatusRolledBack || in.Failed == nil || in.Failed.ID != v2.image || in.Previous != nil || in.Reason != rb.Reason {
		t.Fatalf("after the rollback: %+v", in)
	}
	if _, err := os.Stat(filepath.Join(dir, "images", v2.image)); !os.IsNotExist(err) {
		t.Errorf("the failed image is still on disk: %v", err)
	}
	// The failed image is not taken again, even though it is newer...
	_, err = a.Install(t.Context(), v2.file(t), devVerify, appinstall.Options{})
	if !errors.Is(err, appinstall.ErrFailedImage) {
		t.Fatalf("reinstalling the failed image: %v", err)
	}
	// ...nor by a deployment; a sideload may.
	_, err = a.Install(t.Context(), v2.file(t), devVerify, appinstall.Options{Origin: appinstall.OriginDeployment})
	if !errors.Is(err, appinstall.ErrFailedImage) {
		t.Fatalf("deploying the failed image: %v", err)
	}
	// A different image is.
	v3 := pack(t, app{version: "2.0.1"})
	in = install(t, a, v3, "")
	current(t, a, v3)
	if in.Failed != nil || in.Status != appinstall.StatusInstalled || in.Previous.ID != v1.image {
		t.Fatalf("after a new image: %+v", in)
	}

	// Reopened, everything is as it was.
	a = open(t, dir)
	current(t, a, v3)
	if b, err := os.ReadFile(dataFile); err != nil || string(b) != "41" {
		t.Fatalf("the application's data: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "images"))
	if len(ents) != 2 {
		t.Errorf("images: %v; want current and previous only", ents)
	}
}

// TestPeripheralConflict: an application that claims a peripheral another installed
// application holds is refused, naming both and the peripheral, and nothing is written.
func TestPeripheralConflict(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir)
	install(t, a, pack(t, app{name: "blink", version: "1.0.0", caps: `{"Gpio": [8, 9], "Uart": ["ISU0"]}`}), "")
	for _, tc := range []struct {
		caps string
		want []string
	}{
		{`{"Gpio": [8]}`, []string{"GPIO 8"}},
		{`{"Gpio": [1, 9], "I2cMaster": ["ISU0"]}`, []string{"GPIO 9", "ISU ISU0"}},
	} {
		b := pack(t, app{name: "sensor", component: compB, version: "1.0.0", caps: tc.caps})
		before := snapshot(t, dir)
		_, err := a.Install(t.Context(), b.file(t), devVerify, appinstall.Options{})
		var ce *appinstall.ConflictError
		if !errors.As(err, &ce) || len(ce.Conflicts) != len(tc.want) {
			t.Fatalf("%s: %v", tc.caps, err)
		}
		for i, c := range ce.Conflicts {
			if c.Peripheral != tc.want[i] || c.Holder != "blink" || c.HolderID != compA || ce.App != "sensor" || ce.AppID != compB {
				t.Errorf("conflict %+v of %+v", c, ce)
			}
			for _, s := range []string{`"blink"`, `"sensor"`, tc.want[i], compA, compB} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not name %s: %v", s, err)
				}
			}
		}
		if after := snapshot(t, dir); after != before {
			t.Errorf("a refused install changed the store:\n%s\n---\n%s", before, after)
		}
		if _, ok := a.Get(compB); ok {
			t.Error("the refused application is listed")
		}
	}
	// Without the conflict it installs; and an application may keep its own pins across updates.
	install(t, a, pack(t, app{name: "sensor", component: compB, version: "1.0.0", caps: `{"Gpio": [10]}`}), "")
	install(t, a, pack(t, app{name: "blink", version: "1.1.0", caps: `{"Gpio": [8, 9], "Uart": ["ISU0"]}`}), "")
	if n := len(a.List()); n != 2 {
		t.Fatalf("%d installed", n)
	}
}

// TestRollbackConflict: a rollback to a version that claims a pin another application took
// meanwhile is refused.
func TestRollbackConflict(t *testing.T) {
	a := open(t, t.TempDir())
	install(t, a, pack(t, app{version: "1.0.0", caps: `{"Gpio": [8]}`}), "")
	install(t, a, pack(t, app{version: "2.0.0", caps: `{"Gpio": [7]}`}), "")
	install(t, a, pack(t, app{name: "sensor", component: compB, version: "1.0.0", caps: `{"Gpio": [8]}`}), "")
	_, err := a.Rollback(t.Context(), compA, "crashed")
	var ce *appinstall.ConflictError
	if !errors.As(err, &ce) || ce.Conflicts[0].Peripheral != "GPIO 8" || ce.Conflicts[0].HolderID != compB {
		t.Fatalf("rollback: %v", err)
	}
	if in, _ := a.Get(compA); in.Current.Version != "2.0.0" || in.Status != appinstall.StatusInstalled {
		t.Fatalf("after a refused rollback: %+v", in)
	}
}

// TestRefused: packages the device must refuse, each with a clear error and no change.
func TestRefused(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir)
	v2 := pack(t, app{version: "2.0.0"})
	install(t, a, v2, "")
	tamper := func(b built, off int) []byte {
		out := append([]byte(nil), b.pkg...)
		out[off] ^= 1
		return out
	}
	v3 := pack(t, app{version: "3.0.0"})
	for _, tc := range []struct {
		name   string
		pkg    []byte
		verify appinstall.Verify
		opts   appinstall.Options
		is     error
		msg    string
	}{
		{name: "payload tampered", pkg: tamper(v3, len(v3.pkg)-100), is: imagepkg.ErrPayloadDigest, msg: "payload"},
		{name: "payload tampered early", pkg: tamper(v3, len(v3.pkg)-60_000), is: imagepkg.ErrPayloadDigest, msg: "payload"},
		{name: "metadata tampered", pkg: tamper(v3, 200), msg: "installing"},
		{name: "truncated", pkg: v3.pkg[:len(v3.pkg)-1], msg: "truncated"},
		{name: "kind os", pkg: pack(t, app{version: "3.0.0", kind: imagepkg.KindOS}).pkg, is: appinstall.ErrWrongKind, msg: `kind is "os"`},
		{name: "verify refuses", pkg: v3.pkg, verify: func(*imagepkg.Package) error { return errors.New("not in the director's targets") },
			is: appinstall.ErrUnverified, msg: "not in the director's targets"},
		{name: "development key on a production device", pkg: v3.pkg, verify: appinstall.Signed(imagepkg.TrustedKeys(productionKeys(t), false), 1),
			is: imagepkg.ErrUntrusted, msg: "signature"},
		{name: "no verify", pkg: v3.pkg, verify: nil, is: appinstall.ErrUnverified},
		{name: "older", pkg: pack(t, app{version: "1.9.9"}).pkg, is: appinstall.ErrNotNewer, msg: "2.0.0"},
		{name: "same version, other image", pkg: pack(t, app{version: "2.0.0", image: imageID("other")}).pkg, is: appinstall.ErrNotNewer},
		{name: "pre-release of the same", pkg: pack(t, app{version: "2.0.0-rc.1"}).pkg, is: appinstall.ErrNotNewer},
		{name: "image ID of another component", pkg: pack(t, app{component: compB, version: "1.0.0", image: v2.image, caps: `{"Gpio": [1]}`}).pkg,
			is: appinstall.ErrImageID},
		{name: "image ID reused with other contents", pkg: pack(t, app{version: "2.0.0", image: v2.image, size: 1234}).pkg, is: appinstall.ErrImageID},
		{name: "no entry point", pkg: noEntryPoint(t), msg: "entry point"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verify := devVerify
			if tc.verify != nil || tc.name == "no verify" {
				verify = tc.verify
			}
			f := filepath.Join(t.TempDir(), "x.rampkg")
			must(t, os.WriteFile(f, tc.pkg, 0o600))
			before := snapshot(t, dir)
			_, err := a.Install(t.Context(), f, verify, tc.opts)
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want %v containing %q", err, tc.is, tc.msg)
			}
			t.Log(err)
			if after := snapshot(t, dir); after != before {
				t.Errorf("a refused install changed the store:\n%s\n---\n%s", before, after)
			}
			current(t, a, v2)
		})
	}
}

// noEntryPoint is a package whose manifest's entry point is not in the image.
func noEntryPoint(t *testing.T) []byte {
	b := pack(t, app{version: "3.0.0", name: "noentry"})
	// Repack with an entry point that does not exist: swap the manifest in the metadata.
	p, err := imagepkg.Open(bytesReaderAt(b.pkg), int64(len(b.pkg)))
	must(t, err)
	meta := *p.Metadata
	m := meta.Manifest.Clone()
	m.EntryPoint = "/bin/missing"
	meta.Manifest = m
	var out bytesBuffer
	must(t, imagepkg.Write(&out, &meta, p.Payload(), imagepkg.DevelopmentKey()))
	return out.Bytes()
}

// TestVersionRule: updates go forward only; a deployment may go back; a sideload may do
// either or reinstall; the current image again is a no-op for all.
func TestVersionRule(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir)
	v1, v2 := pack(t, app{version: "1.0.0"}), pack(t, app{version: "2.0.0"})
	install(t, a, v1, "")
	install(t, a, v2, appinstall.OriginUpdate)

	// The same image again changes nothing, whatever the origin.
	before := snapshot(t, dir)
	for _, o := range []appinstall.Origin{appinstall.OriginUpdate, appinstall.OriginDeployment, appinstall.OriginSideload} {
		in := install(t, a, v2, o)
		if in.Current.ID != v2.image || in.Previous.ID != v1.image {
			t.Fatalf("%s of the current image: %+v", o, in)
		}
	}
	if snapshot(t, dir) != before {
		t.Error("installing the current image again changed the store")
	}

	// The tenant deploys 1.0.0 again: the previous image becomes current, reused in place.
	in := install(t, a, v1, appinstall.OriginDeployment)
	current(t, a, v1)
	if in.Previous.ID != v2.image || in.Current.Origin != appinstall.OriginDeployment {
		t.Fatalf("deploying the older image: %+v", in)
	}
	// A deployment of an older image never installed before.
	v05 := pack(t, app{version: "0.5.0"})
	install(t, a, v05, appinstall.OriginDeployment)
	current(t, a, v05)
	// A developer sideloads a rebuild of the same version.
	again := pack(t, app{version: "0.5.0", image: imageID("rebuild"), size: 777})
	install(t, a, again, appinstall.OriginSideload)
	current(t, a, again)
	if _, err := a.Install(t.Context(), v05.file(t), devVerify, appinstall.Options{}); !errors.Is(err, appinstall.ErrNotNewer) {
		t.Fatalf("an update to the same version: %v", err)
	}
	if _, err := a.Install(t.Context(), v05.file(t), devVerify, appinstall.Options{Origin: "mystery"}); err == nil {
		t.Fatal("an unknown origin was accepted")
	}
}

// TestRemove: images go; data stays unless purged; a reinstall finds the data it left.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir)
	v1, v2 := pack(t, app{version: "1.0.0"}), pack(t, app{version: "2.0.0"})
	install(t, a, v1, "")
	install(t, a, v2, "")
	data, _ := a.DataDir(compA)
	must(t, os.WriteFile(filepath.Join(data, "keep"), []byte("x"), 0o600))
	must(t, a.Remove(compA, false))
	if _, ok := a.Get(compA); ok || len(a.List()) != 0 {
		t.Fatal("still installed")
	}
	if _, ok := a.Path(v2.image); ok {
		t.Fatal("image path after removal")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "images")); len(ents) != 0 {
		t.Fatalf("images left: %v", ents)
	}
	if !errors.Is(a.Remove(compA, false), appinstall.ErrNotInstalled) {
		t.Fatal("removing twice")
	}
	install(t, a, v1, "")
	if b, err := os.ReadFile(filepath.Join(data, "keep")); err != nil || string(b) != "x" {
		t.Fatalf("data after reinstall: %q %v", b, err)
	}
	must(t, os.MkdirAll(filepath.Join(data, "sub"), 0o500))
	must(t, a.Remove(compA, true))
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("purged data: %v", err)
	}
	if _, err := a.Rollback(t.Context(), compA, "x"); !errors.Is(err, appinstall.ErrNotInstalled) {
		t.Fatalf("rollback of a removed app: %v", err)
	}
}

// TestNoPrevious: the first version has nothing to roll back to.
func TestNoPrevious(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir)
	install(t, a, pack(t, app{version: "1.0.0"}), "")
	before := snapshot(t, dir)
	if _, err := a.Rollback(t.Context(), compA, "crashed"); !errors.Is(err, appinstall.ErrNoPrevious) {
		t.Fatal(err)
	}
	if snapshot(t, dir) != before {
		t.Error("a refused rollback changed the store")
	}
}

// TestOpenCleansUp: what a crash can leave (a staging directory, an image the state does not
// name, a state file's temporary file, a purge half done) is gone after Open.
func TestOpenCleansUp(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir)
	v1 := pack(t, app{version: "1.0.0"})
	install(t, a, v1, "")
	stray := []string{
		filepath.Join("images", v1.image+".tmp-123"),
		filepath.Join("images", imageID("orphan")),
	}
	for _, s := range stray {
		must(t, os.MkdirAll(filepath.Join(dir, s, "sub"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, s, "sub", "f"), nil, 0o444))
		must(t, os.Chmod(filepath.Join(dir, s, "sub"), 0o555))
	}
	must(t, os.WriteFile(filepath.Join(dir, ".apps.json.tmp-999"), []byte("{"), 0o600))
	a = open(t, dir)
	current(t, a, v1)
	for _, s := range append(stray, ".apps.json.tmp-999") {
		if _, err := os.Lstat(filepath.Join(dir, s)); !os.IsNotExist(err) {
			t.Errorf("%s survived Open: %v", s, err)
		}
	}
}

// TestConcurrent: queries run while installs and rollbacks do (run with -race).
func TestConcurrent(t *testing.T) {
	a := open(t, t.TempDir())
	v1, v2 := pack(t, app{version: "1.0.0"}), pack(t, app{version: "2.0.0"})
	f1, f2 := v1.file(t), v2.file(t)
	install(t, a, v1, "")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, in := range a.List() {
					if _, ok := a.Path(in.Current.ID); !ok {
						t.Errorf("current image %s has no path", in.Current.ID)
					}
				}
			}
		})
	}
	for range 3 {
		_, err := a.Install(t.Context(), f2, devVerify, appinstall.Options{Origin: appinstall.OriginSideload})
		must(t, err)
		_, err = a.Install(t.Context(), f1, devVerify, appinstall.Options{Origin: appinstall.OriginDeployment})
		must(t, err)
	}
	close(stop)
	wg.Wait()
}

// TestCancel: an install cancelled while it extracts leaves the store as it was.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir)
	v1, v2 := pack(t, app{version: "1.0.0"}), pack(t, app{version: "2.0.0", size: 200_000})
	install(t, a, v1, "")
	before := snapshot(t, dir)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	payloadStart := int64(len(v2.pkg)) - 200_000
	a, err := appinstall.Open(appinstall.WithReadHook(appinstall.Config{Dir: dir}, func(r io.ReaderAt) io.ReaderAt {
		return readAtFunc(func(b []byte, off int64) (int, error) {
			if off > payloadStart {
				cancel() // part of the payload is on disk by now
			}
			return r.ReadAt(b, off)
		})
	}))
	must(t, err)
	_, err = a.Install(ctx, v2.file(t), devVerify, appinstall.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled install: %v", err)
	}
	if after := snapshot(t, dir); after != before {
		t.Errorf("a cancelled install changed the store:\n%s\n---\n%s", before, after)
	}
	current(t, a, v1)
}

type readAtFunc func(b []byte, off int64) (int, error)

func (f readAtFunc) ReadAt(b []byte, off int64) (int, error) { return f(b, off) }
