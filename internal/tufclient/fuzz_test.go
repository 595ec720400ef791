package tufclient_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/tufclient"
	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/rampart-iot/rampart/internal/tufrepo/tufrepotest"
)

// fuzzFiles are the files FuzzRefresh replaces, by index.
var fuzzFiles = []struct {
	repo tufclient.Repo
	name string
}{
	{tufclient.Director, "2.root.json"}, {tufclient.Director, "timestamp.json"}, {tufclient.Director, "3.snapshot.json"}, {tufclient.Director, "3.targets.json"},
	{tufclient.Image, "2.root.json"}, {tufclient.Image, "timestamp.json"}, {tufclient.Image, "3.snapshot.json"}, {tufclient.Image, "3.targets.json"},
}

// FuzzRefresh serves arbitrary bytes as one metadata file of a real pair of repositories
// (which picks the file, and whether the device already trusts the previous versions) and
// checks that Refresh never panics, fails with a classified *Error, and when it succeeds
// returns exactly what the repositories published: a file that differs from the real one
// can only be accepted if it means the same (JSON whitespace, say).
func FuzzRefresh(f *testing.F) {
	director := tufrepotest.NewFixed(f, t0, "fuzz director")
	image := tufrepotest.NewFixed(f, t0, "fuzz image")
	image.Publish(t0, tufrepotest.Target(1), tufrepotest.Target(2), tufrepotest.Target(3))
	director.Publish(t0, tufrepotest.Target(1))
	// A device that trusts versions 2 of both.
	trusted := f.TempDir()
	srv := &server{repos: map[tufclient.Repo]*tufrepotest.Repo{tufclient.Director: director, tufclient.Image: image}, override: map[string]io.Reader{}}
	now := func() time.Time { return t0.Add(time.Hour) }
	c, err := tufclient.New(tufclient.Config{Dir: trusted, Fetcher: srv, Now: now, DirectorRoot: director.State.Roots[0], ImageRoot: image.State.Roots[0]})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := c.Refresh(context.Background()); err != nil {
		f.Fatal(err)
	}
	// Then both publish version 3.
	image.Publish(t0.Add(time.Minute), tufrepotest.Target(1), tufrepotest.Target(2), tufrepotest.Target(3), tufrepotest.Target(4))
	director.Publish(t0.Add(time.Minute), tufrepotest.Target(2), tufrepotest.Target(4))
	expected := want(tufrepotest.Target(2), tufrepotest.Target(4))

	for i, ff := range fuzzFiles {
		real, ok := srv.repos[ff.repo].State.File(ff.name)
		if !ok {
			real = srv.repos[ff.repo].State.Roots[0]
		}
		f.Add(uint8(i), real)
		f.Add(uint8(i)|0x80, real)
		f.Add(uint8(i), bytes.Replace(real, []byte(`"version":`), []byte(`"version":1`), 1))
		f.Add(uint8(i)|0x80, real[:len(real)/2])
	}
	f.Add(uint8(1), []byte(`{"signed":{"_type":"timestamp","meta":{}},"signatures":[]}`))

	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		ff := fuzzFiles[int(which&0x7f)%len(fuzzFiles)]
		dir := fastTempDir(t)
		if which&0x80 != 0 {
			for _, repo := range []string{"director", "image"} {
				if err := os.MkdirAll(filepath.Join(dir, repo), 0o700); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
					b, err := os.ReadFile(filepath.Join(trusted, repo, name))
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, repo, name), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		s := &server{repos: srv.repos, override: map[string]io.Reader{string(ff.repo) + "/" + ff.name: bytes.NewReader(data)}}
		c, err := tufclient.New(tufclient.Config{Dir: dir, Fetcher: s, Now: now, DirectorRoot: director.State.Roots[0], ImageRoot: image.State.Roots[0]})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Refresh(context.Background())
		if err != nil {
			if tufclient.ReasonOf(err) == "" {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !reflect.DeepEqual(got, expected) {
			t.Fatalf("accepted %q as %s and returned %+v, want %+v", data, ff.name, got, expected)
		}
		// What was stored verifies again: a second refresh from it agrees.
		s.override = map[string]io.Reader{}
		if got, err := c.Refresh(context.Background()); err != nil || !reflect.DeepEqual(got, expected) {
			t.Fatalf("after accepting %q as %s: %+v, %v", data, ff.name, got, err)
		}
	})
}

// The version pins in the fuzz setup are what the names above assume.
func TestFuzzSetupNames(t *testing.T) {
	r := tufrepotest.NewFixed(t, t0, "x")
	r.Publish(t0)
	r.Publish(t0)
	for _, name := range []string{"3.snapshot.json", "3.targets.json"} {
		if _, ok := r.State.File(name); !ok {
			t.Fatalf("%s not served", name)
		}
	}
	if _, ok := r.State.File(tufrepo.RootFileName(2)); ok {
		t.Fatal("2.root.json served without a rotation")
	}
}

// fastTempDir is a temporary directory in memory (/dev/shm) where there is one: the client
// fsyncs every file it stores, which on a disk slows fuzzing tenfold.
func fastTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "tufclient-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
