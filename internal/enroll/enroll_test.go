package enroll_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/enroll"
	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
)

func TestSoftwareRecordIsStableAndValid(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := rot.Open(ctx, "software", dir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := enroll.Record(ctx, r, "v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := enrollment.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.RootOfTrust != "software" || !back.IsSoftware() || back.EKCertificate != nil {
		t.Fatalf("record: %+v", back)
	}
	// Reopening the same state gives the same identity; a new state dir a new one.
	r2, _ := softrot.Open(dir, rand.Reader)
	rec2, _ := enroll.Record(ctx, r2, "v0.1.0")
	if rec2.DeviceID != rec.DeviceID || string(rec2.AKPublic) != string(rec.AKPublic) {
		t.Fatal("identity changed across reopen")
	}
	r3, _ := softrot.Open(t.TempDir(), rand.Reader)
	rec3, _ := enroll.Record(ctx, r3, "v0.1.0")
	if rec3.DeviceID == rec.DeviceID {
		t.Fatal("two state directories share an identity")
	}
	st, _ := os.Stat(filepath.Join(dir, "rot-software", "ek.pem"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode())
	}
}

func TestSoftwareRejectsBadState(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rot-software"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rot-software", "ek.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := softrot.Open(dir, rand.Reader); err == nil || !strings.Contains(err.Error(), "ek.pem") {
		t.Fatalf("corrupt key accepted: %v", err)
	}
	if _, err := rot.Open(context.Background(), "software:x", t.TempDir()); err == nil {
		t.Fatal("argument accepted")
	}
	if _, err := rot.Open(context.Background(), "pluton", t.TempDir()); err == nil || !strings.Contains(err.Error(), "software") {
		t.Fatalf("unknown backend: %v", err)
	}
}
