package qemuvm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompareVersions: digits compare as numbers, so the newest package sorts last.
func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"linux-image-6.1.0-9-amd64_6.1.27-1_amd64.deb", "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb", -1},
		{"linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb", "linux-image-6.1.0-56-amd64_6.1.192-10_amd64.deb", -1},
		{"linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb", "linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb", 0},
		{"linux-image-6.1.0-10-amd64_6.1.38-1_amd64.deb", "linux-image-6.1.0-9-amd64_6.1.27-1_amd64.deb", 1},
		{"a007", "a7", 0},
		{"a7", "a7b", -1},
	} {
		if got := compareVersions(c.a, c.b); got != c.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestLockWaitsOnlyUntilContextEnds: a second taker of a held lock gives up when its context
// ends, and gets the lock once it is released.
func TestLockWaitsOnlyUntilContextEnds(t *testing.T) {
	cache := t.TempDir()
	unlock, err := lock(context.Background(), cache)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if u, err := lock(ctx, cache); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u()
		}
		t.Fatalf("taking a held lock: %v, want the context's deadline", err)
	}
	unlock()
	u, err := lock(context.Background(), cache)
	if err != nil {
		t.Fatalf("taking the released lock: %v", err)
	}
	u()
}

// fakeAPT puts apt-cache and apt-get scripts first on PATH: apt-cache says linux-image-amd64
// depends on pkg, and apt-get download runs download (a shell script run in the download
// directory) and logs its arguments to the returned file.
func fakeAPT(t *testing.T, pkg, download string) (log string) {
	t.Helper()
	bin := t.TempDir()
	log = filepath.Join(bin, "apt-get.log")
	write := func(name, script string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("apt-cache", "echo linux-image-amd64\necho '  Depends: "+pkg+"'\n")
	write("apt-get", "echo \"$*\" >> '"+log+"'\n"+download)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return log
}

// makeDeb builds a kernel package for release 6.1.0-ABI-amd64 holding a kernel image of
// vmlinuzSize bytes, module lists naming one module, "fake", and fake.ko holding ko. It is
// not compressed, so that a truncated copy still yields part of its files.
func makeDeb(t *testing.T, abi string, vmlinuzSize int, ko []byte) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb")
	}
	release := "6.1.0-" + abi + "-amd64"
	root := t.TempDir()
	files := map[string][]byte{
		"DEBIAN/control":                                          []byte("Package: linux-image-" + release + "\nVersion: 6.1.1-1\nArchitecture: amd64\nMaintainer: test <test@example.com>\nDescription: test kernel\n"),
		"boot/vmlinuz-" + release:                                 bytes.Repeat([]byte("K"), vmlinuzSize),
		"lib/modules/" + release + "/modules.order":               []byte("kernel/drivers/misc/fake.ko\n"),
		"lib/modules/" + release + "/modules.builtin":             []byte("kernel/drivers/misc/builtin.ko\n"),
		"lib/modules/" + release + "/kernel/drivers/misc/fake.ko": ko,
	}
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "linux-image-"+release+"_6.1.1-1_amd64.deb")
	if b, err := exec.Command("dpkg-deb", "-Znone", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, b)
	}
	return out
}

func cacheEntries(t *testing.T, cache string) []string {
	t.Helper()
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != ".lock" {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestDownloadRefusesAnotherSeries: when linux-image-amd64 depends on another kernel series
// (Debian 13's 6.12), nothing is downloaded and the error says why.
func TestDownloadRefusesAnotherSeries(t *testing.T) {
	log := fakeAPT(t, "linux-image-6.12.57+deb13-amd64", "touch linux-image-6.12.57+deb13-amd64_6.12.57-1_amd64.deb\n")
	cache := t.TempDir()
	_, err := FetchKernel(context.Background(), cache)
	if err == nil || !strings.Contains(err.Error(), "linux-image-6.12.57+deb13-amd64, not Debian 12's 6.1 kernel") {
		t.Fatalf("FetchKernel: %v", err)
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("apt-get ran")
	}
	if got := cacheEntries(t, cache); len(got) != 0 {
		t.Errorf("the cache holds %q", got)
	}
}

// TestDownloadFailedLeavesNothing: a download that fails after writing part of the package
// (as a killed one does) leaves nothing in the cache that a later run would take.
func TestDownloadFailedLeavesNothing(t *testing.T) {
	fakeAPT(t, "linux-image-6.1.0-9-amd64", "printf partial > linux-image-6.1.0-9-amd64_6.1.27-1_amd64.deb\nexit 100\n")
	cache := t.TempDir()
	if _, err := FetchKernel(context.Background(), cache); err == nil || !strings.Contains(err.Error(), "apt-get download linux-image-6.1.0-9-amd64") {
		t.Fatalf("FetchKernel: %v", err)
	}
	if got := cacheEntries(t, cache); len(got) != 0 {
		t.Errorf("the cache holds %q", got)
	}
}

// TestDownloadRefusesAnotherPackage: apt-get download leaving something else than the package
// asked for is an error, and nothing is kept.
func TestDownloadRefusesAnotherPackage(t *testing.T) {
	deb := makeDeb(t, "9", 10, []byte("x"))
	fakeAPT(t, "linux-image-6.1.0-9-amd64", "cp '"+deb+"' linux-image-6.1.0-10-amd64_6.1.38-1_amd64.deb\n")
	cache := t.TempDir()
	if _, err := FetchKernel(context.Background(), cache); err == nil || !strings.Contains(err.Error(), "not one linux-image-6.1.0-9-amd64_*_amd64.deb") {
		t.Fatalf("FetchKernel: %v", err)
	}
	if got := cacheEntries(t, cache); len(got) != 0 {
		t.Errorf("the cache holds %q", got)
	}
}

// TestFetchKernel: a downloaded package is renamed into the cache, and the kernel, the module
// lists and a module are extracted from it into its stamped root; what killed runs left in
// the cache is removed; a module that is not ELF is an error naming the root to delete.
func TestFetchKernel(t *testing.T) {
	deb := makeDeb(t, "9", 1000, []byte("not ELF"))
	log := fakeAPT(t, "linux-image-6.1.0-9-amd64", "cp '"+deb+"' .\n")
	cache := t.TempDir()
	for _, d := range []string{downloadPrefix + "1", extractPrefix + "2"} {
		if err := os.MkdirAll(filepath.Join(cache, d, "boot"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	k, err := FetchKernel(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	if k.Release != "6.1.0-9-amd64" || k.Deb != filepath.Join(cache, filepath.Base(deb)) {
		t.Errorf("release %s, package %s", k.Release, k.Deb)
	}
	if b, _ := os.ReadFile(log); string(b) != "download linux-image-6.1.0-9-amd64\n" {
		t.Errorf("apt-get ran with %q", b)
	}
	if !k.Has("fake") || k.Builtin("fake") || !k.Builtin("builtin") || k.Has("other") {
		t.Errorf("Has(fake) %v, Builtin(fake) %v, Builtin(builtin) %v, Has(other) %v", k.Has("fake"), k.Builtin("fake"), k.Builtin("builtin"), k.Has("other"))
	}
	vmlinuz, err := k.Vmlinuz(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(vmlinuz); err != nil || len(b) != 1000 {
		t.Errorf("the kernel image: %d bytes, %v", len(b), err)
	}
	if _, err := os.Stat(filepath.Join(k.Root, rootStamp)); err != nil {
		t.Error(err)
	}
	got := cacheEntries(t, cache)
	if strings.Join(got, " ") != filepath.Base(k.Root)+" "+filepath.Base(deb) {
		t.Errorf("the cache holds %q, want the package and its root", got)
	}
	_, err = k.Modules(ctx, "fake")
	if err == nil || !strings.Contains(err.Error(), "delete "+k.Root) {
		t.Fatalf("a module that is not ELF: %v", err)
	}
	if _, err := os.Stat(filepath.Join(k.modDir(), "kernel/drivers/misc/fake.ko")); err != nil {
		t.Errorf("the module was not extracted: %v", err)
	}
}

// TestFetchKernelNewest: of two packages in the cache, the one with the higher ABI number is
// taken (6.1.0-56 over 6.1.0-9), and nothing is downloaded.
func TestFetchKernelNewest(t *testing.T) {
	log := fakeAPT(t, "linux-image-6.1.0-1-amd64", "exit 1\n")
	cache := t.TempDir()
	for _, abi := range []string{"9", "56"} {
		b, err := os.ReadFile(makeDeb(t, abi, 10, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, "linux-image-6.1.0-"+abi+"-amd64_6.1.1-1_amd64.deb"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k, err := FetchKernel(context.Background(), cache)
	if err != nil {
		t.Fatal(err)
	}
	if k.Release != "6.1.0-56-amd64" {
		t.Errorf("release %s, want 6.1.0-56-amd64", k.Release)
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("apt-get ran")
	}
}

// TestExtractDamagedPackage: a truncated package is an error naming it as the entry to delete,
// and leaves no part of a file in the root; a root an older version left without the stamp (a
// truncated kernel image in it) is extracted again.
func TestExtractDamagedPackage(t *testing.T) {
	fakeAPT(t, "linux-image-6.1.0-9-amd64", "exit 1\n")
	const size = 1 << 20
	deb := makeDeb(t, "9", size, nil)
	whole, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	cached := filepath.Join(cache, filepath.Base(deb))
	root := strings.TrimSuffix(cached, ".deb")
	vmlinuz := filepath.Join(root, "boot", "vmlinuz-6.1.0-9-amd64")
	// Cut in the middle of the kernel image, the package's largest member.
	if err := os.WriteFile(cached, whole[:len(whole)-size/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = FetchKernel(context.Background(), cache)
	if err == nil || !strings.Contains(err.Error(), "delete "+cached) {
		t.Fatalf("a truncated package: %v", err)
	}
	if _, err := os.Stat(vmlinuz); err == nil {
		t.Error("a part of the kernel image is in the root")
	}

	// An unstamped root with a truncated image, beside the whole package.
	if err := os.WriteFile(cached, whole, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, rootStamp)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(vmlinuz), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vmlinuz, []byte("KKK"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FetchKernel(context.Background(), cache); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(vmlinuz); err != nil || st.Size() != size {
		t.Fatalf("the kernel image after extracting again: %v, %v", st, err)
	}
}
