//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package blob_test

// The kill campaign: the test binary re-executes itself as a child that runs one Put or Delete
// on a "dir" store and kills itself with SIGKILL after the Nth durable step (Dir.Step) or when
// Put has read N bytes. The parent then opens the store as a restarted service would and checks
// that every blob under its final name holds the content its name says, that no temporary file
// is left, and that the blob is there if and only if the step that stores it was reached.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/blob"
	"github.com/rampart-iot/rampart/internal/blob/blobtest"
)

const childEnv = "RAMPART_BLOB_KILL_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(killChild(spec))
	}
	os.Exit(m.Run())
}

// childSpec tells a child what to do and where to die.
type childSpec struct {
	Dir     string // the store's directory
	Seed    uint64 // of the content (blobtest.Content)
	Size    int
	Delete  bool   // delete the blob instead of storing it
	Collect bool   // garbage-collect it (DeleteIfOlder) instead
	Kill    string // "", "step:N" or "byte:N"
	Steps   string // if set, write the name of every step there (a dry run)
}

func killChild(raw string) int {
	var sp childSpec
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	kind, nstr, _ := strings.Cut(sp.Kill, ":")
	n, _ := strconv.Atoi(nstr)
	die := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	d, err := blob.OpenDir(sp.Dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var steps []string
	d.Step = func(name string) {
		steps = append(steps, name)
		if kind == "step" && len(steps) == n {
			die()
		}
	}
	content := blobtest.Content(sp.Seed, sp.Size)
	var r io.Reader = &chunks{r: bytes.NewReader(content)}
	if kind == "byte" {
		r = &byteKiller{r: r, left: n, die: die}
	}
	switch {
	case sp.Collect:
		_, err = d.DeleteIfOlder(context.Background(), blobtest.Digest(content), time.Now().Add(time.Hour))
	case sp.Delete:
		err = d.Delete(context.Background(), blobtest.Digest(content))
	default:
		_, _, err = d.Put(context.Background(), r, int64(sp.Size))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if sp.Steps != "" {
		if err := os.WriteFile(sp.Steps, []byte(strings.Join(steps, "\n")), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	return 0
}

// chunks reads at most 4 KiB at a time, so that a byte kill lands inside a write.
type chunks struct{ r io.Reader }

func (c *chunks) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), 4096)]) }

// byteKiller dies when the reader has given left bytes.
type byteKiller struct {
	r    io.Reader
	left int
	die  func()
}

func (b *byteKiller) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.die()
	}
	n, err := b.r.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

// child runs a child once; killed says it died of its SIGKILL.
func child(t *testing.T, sp childSpec) (killed bool) {
	t.Helper()
	raw, err := json.Marshal(sp)
	must(t, err)
	exe, err := os.Executable()
	must(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("child %+v: %v\n%s", sp, err, out.String())
	}
	return false
}

// dryRun runs a child without a kill and returns its steps.
func dryRun(t *testing.T, sp childSpec) []string {
	t.Helper()
	sp.Steps = filepath.Join(t.TempDir(), "steps")
	if child(t, sp) {
		t.Fatal("a dry run was killed")
	}
	b, err := os.ReadFile(sp.Steps)
	must(t, err)
	return strings.Split(string(b), "\n")
}

// restart opens the store as a restarted service would, and checks it holds exactly the blob
// of content if present is true, and nothing otherwise, whole, with no temporary file left.
func restart(t *testing.T, dir string, content []byte, present bool) {
	t.Helper()
	d, err := blob.OpenDir(dir)
	must(t, err)
	defer d.Close()
	if present {
		checkTree(t, dir, content)
		f, _, err := d.Open(t.Context(), blobtest.Digest(content))
		must(t, err)
		got, err := io.ReadAll(f)
		f.Close()
		must(t, err)
		if !bytes.Equal(got, content) {
			t.Fatal("the blob reads other content")
		}
	} else {
		checkTree(t, dir)
	}
}

func TestKillCampaign(t *testing.T) {
	const size = 300_000
	content := blobtest.Content(42, size)
	put := childSpec{Seed: 42, Size: size}

	// A new blob, killed after every step: there from the rename on, never partial. Then the
	// restarted service stores it.
	sp := put
	sp.Dir = t.TempDir()
	steps := dryRun(t, sp)
	if !slices.Equal(steps, []string{"put:temp", "put:synced", "put:mkdir", "put:renamed", "put:done"}) {
		t.Fatalf("steps of a new blob: %v", steps)
	}
	stored := slices.Index(steps, "put:renamed") + 1
	for n := 1; n <= len(steps); n++ {
		sp := put
		sp.Dir, sp.Kill = t.TempDir(), fmt.Sprint("step:", n)
		if !child(t, sp) {
			t.Fatalf("kill at step %d (%s): the child was not killed", n, steps[n-1])
		}
		restart(t, sp.Dir, content, n >= stored)
		sp.Kill = ""
		child(t, sp)
		restart(t, sp.Dir, content, true)
	}

	// Killed while reading, anywhere: nothing is stored.
	for _, n := range []int{0, 1, 4095, 4096, 4097, size / 2, size - 1, size} {
		sp := put
		sp.Dir, sp.Kill = t.TempDir(), fmt.Sprint("byte:", n)
		if !child(t, sp) {
			t.Fatalf("kill at byte %d: the child was not killed", n)
		}
		restart(t, sp.Dir, content, false)
	}

	// A blob stored already survives a Put of it killed anywhere, and a Delete of it is all or
	// nothing.
	sp = put
	sp.Dir = t.TempDir()
	child(t, sp)
	steps = dryRun(t, sp)
	if !slices.Equal(steps, []string{"put:temp", "put:synced", "put:renamed", "put:done"}) {
		t.Fatalf("steps of a stored blob: %v", steps)
	}
	for n := 1; n <= len(steps); n++ {
		sp.Kill = fmt.Sprint("step:", n)
		if !child(t, sp) {
			t.Fatalf("kill at step %d: the child was not killed", n)
		}
		restart(t, sp.Dir, content, true)
	}
	del := childSpec{Seed: 42, Size: size, Delete: true}
	del.Dir = t.TempDir()
	child(t, childSpec{Dir: del.Dir, Seed: 42, Size: size})
	steps = dryRun(t, del)
	if !slices.Equal(steps, []string{"delete:removed", "delete:done"}) {
		t.Fatalf("steps of a delete: %v", steps)
	}
	for n := 1; n <= len(steps); n++ {
		del.Dir, del.Kill = t.TempDir(), ""
		child(t, childSpec{Dir: del.Dir, Seed: 42, Size: size})
		del.Kill = fmt.Sprint("step:", n)
		if !child(t, del) {
			t.Fatalf("kill at delete step %d: the child was not killed", n)
		}
		restart(t, del.Dir, content, false)
	}

	// A collection killed after it moved the blob aside leaves it in place once the store is
	// opened again (the next collection decides); killed after the removal, it is gone.
	gc := childSpec{Seed: 42, Size: size, Collect: true}
	gc.Dir = t.TempDir()
	child(t, childSpec{Dir: gc.Dir, Seed: 42, Size: size})
	steps = dryRun(t, gc)
	if !slices.Equal(steps, []string{"gc:aside", "gc:removed"}) {
		t.Fatalf("steps of a collection: %v", steps)
	}
	for n, want := range []bool{true, false} {
		gc.Dir, gc.Kill = t.TempDir(), ""
		child(t, childSpec{Dir: gc.Dir, Seed: 42, Size: size})
		gc.Kill = fmt.Sprint("step:", n+1)
		if !child(t, gc) {
			t.Fatalf("kill at collection step %d: the child was not killed", n+1)
		}
		restart(t, gc.Dir, content, want)
	}
}
