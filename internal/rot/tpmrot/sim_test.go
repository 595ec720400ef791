//go:build cgo

package tpmrot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/rottest"
)

func openSimT(t *testing.T, dir string) *TPM {
	t.Helper()
	r, err := rot.Open(context.Background(), NameSim, dir)
	if err != nil {
		t.Fatal(err)
	}
	return r.(*TPM)
}

func TestSimConformance(t *testing.T) {
	rottest.Run(t, rottest.Backend{
		Open:      func(t *testing.T, dir string) rot.RootOfTrust { return openSimT(t, dir) },
		FreshPCRs: true,
	})
}

// TestSimIdentityIsTheSeed: the seed file alone decides the EK and the storage root key, so a
// copied seed (and ak.json) is the same device, and another seed another device.
func TestSimIdentityIsTheSeed(t *testing.T) {
	ctx := context.Background()
	a := t.TempDir()
	r := openSimT(t, a)
	ekA, cert, err := r.Endorsement(ctx)
	if err != nil || cert != nil {
		t.Fatalf("%v; the simulator has no EK certificate, got %d bytes", err, len(cert))
	}
	akA, _ := r.AttestationKey(ctx)
	r.Close()

	b := t.TempDir()
	r = openSimT(t, b)
	ekB, _, _ := r.Endorsement(ctx)
	r.Close()
	if bytes.Equal(ekA, ekB) {
		t.Fatal("two seeds gave one EK")
	}

	c := t.TempDir()
	if err := os.MkdirAll(filepath.Join(c, SimStateSubdir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"seed", akFileName} {
		data, err := os.ReadFile(filepath.Join(a, SimStateSubdir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c, SimStateSubdir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r = openSimT(t, c)
	ekC, _, _ := r.Endorsement(ctx)
	akC, _ := r.AttestationKey(ctx)
	r.Close()
	if !bytes.Equal(ekA, ekC) || !bytes.Equal(akA, akC) {
		t.Fatal("a copied seed and ak.json are not the same device")
	}
}

func TestSimOnePerProcess(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	r1 := openSimT(t, a)
	r2 := openSimT(t, a) // the same device again shares the simulator
	if _, err := rot.Open(ctx, NameSim, b); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second device in one process: %v", err)
	}
	d := sha256.Sum256([]byte("x"))
	if err := r1.Extend(ctx, 5, d[:]); err != nil {
		t.Fatal(err)
	}
	v, err := r2.ReadPCRs(ctx, []int{5})
	if err != nil || bytes.Equal(v[5], make([]byte, 32)) {
		t.Fatalf("the two handles do not share the simulator: %x %v", v[5], err)
	}
	r1.Close()
	if _, err := r2.Quote(ctx, []int{5}, nil); err != nil {
		t.Fatalf("closing one handle broke the other: %v", err)
	}
	if _, err := r1.Quote(ctx, []int{5}, nil); err == nil {
		t.Fatal("a closed handle still works")
	}
	r2.Close()
	r3 := openSimT(t, b)
	defer r3.Close()
	// The simulator restarted: its PCRs are fresh again.
	if v, _ := r3.ReadPCRs(ctx, []int{5}); !bytes.Equal(v[5], make([]byte, 32)) {
		t.Fatalf("PCR 5 = %x after a restart", v[5])
	}
}

func TestSimRejectsForeignOrBrokenAK(t *testing.T) {
	ctx := context.Background()
	a, b := t.TempDir(), t.TempDir()
	openSimT(t, a).Close()
	openSimT(t, b).Close()
	akA, err := os.ReadFile(filepath.Join(a, SimStateSubdir, akFileName))
	if err != nil {
		t.Fatal(err)
	}
	pathB := filepath.Join(b, SimStateSubdir, akFileName)
	for _, c := range []struct {
		name, content, want string
	}{
		{"another TPM's AK", string(akA), "another TPM"},
		{"not JSON", "{", "ak.json"},
		{"unknown key", `{"version":1,"parent_name":"","public":"","private":"","extra":1}`, "extra"},
		{"version 2", `{"version":2,"parent_name":"","public":"","private":""}`, "version"},
		{"not an AK", `{"version":1,"parent_name":"","public":"AAE=","private":""}`, "TPMT_PUBLIC"},
		{"too large", strings.Repeat(" ", maxAKFile+1), "larger"},
	} {
		if err := os.WriteFile(pathB, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := rot.Open(ctx, NameSim, b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error about %q", c.name, err, c.want)
		}
	}
	if _, err := rot.Open(ctx, NameSim+":x", b); err == nil {
		t.Error("an argument was accepted")
	}
	seed := filepath.Join(t.TempDir(), SimStateSubdir)
	os.MkdirAll(seed, 0o700)
	os.WriteFile(filepath.Join(seed, "seed"), []byte("short"), 0o600)
	if _, err := rot.Open(ctx, NameSim, filepath.Dir(seed)); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("a short seed: %v", err)
	}
}

// TestSimEKIsTheDefaultTemplate: the EK the TPM makes has exactly the public area a verifier
// rebuilds from the EK's public key.
func TestSimEKIsTheDefaultTemplate(t *testing.T) {
	r := openSimT(t, t.TempDir())
	defer r.Close()
	ekDER, _, err := r.Endorsement(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	area, err := rot.EKPublicArea(ekDER)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ek, err := r.createEK(r.ek.template)
	if err != nil {
		t.Fatal(err)
	}
	r.flush(ek.ObjectHandle)
	if !bytes.Equal(ek.OutPublic.Bytes(), tpm2.Marshal(*area)) {
		t.Fatalf("the TPM's EK public area differs from the rebuilt one")
	}
	if area.Type != tpm2.TPMAlgRSA {
		t.Fatalf("with no EK certificate the EK is RSA; got %v", area.Type)
	}
}

// TestSimQualifiedSigner: a TPM's quote names the AK by its qualified name, under the storage
// root key, not by its name.
func TestSimQualifiedSigner(t *testing.T) {
	ctx := context.Background()
	r := openSimT(t, t.TempDir())
	defer r.Close()
	q, err := r.Quote(ctx, []int{0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	attest, err := tpm2.Unmarshal[tpm2.TPMSAttest](q.Attest)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	srk, err := r.createSRK()
	if err != nil {
		t.Fatal(err)
	}
	r.flush(srk.ObjectHandle)
	r.mu.Unlock()
	qn := func(parent, name []byte) []byte {
		s := sha256.Sum256(append(bytes.Clone(parent), name...))
		return append([]byte{0, 0x0b}, s[:]...)
	}
	owner := binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMRHOwner))
	want := qn(qn(owner, srk.Name.Buffer), r.ak.name.Buffer)
	if !bytes.Equal(attest.QualifiedSigner.Buffer, want) {
		t.Fatalf("qualifiedSigner %x; want %x", attest.QualifiedSigner.Buffer, want)
	}
}

func BenchmarkSimQuote(b *testing.B) {
	r, err := rot.Open(context.Background(), NameSim, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	nonce := sha256.Sum256(nil)
	for b.Loop() {
		if _, err := r.Quote(context.Background(), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, nonce[:]); err != nil {
			b.Fatal(err)
		}
	}
}
