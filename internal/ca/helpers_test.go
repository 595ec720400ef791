package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

// t0 is when every test's clock starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// clock is an injected clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// fixture is a real store, an Authority on it with an injected clock, a service root and a
// tenant (without a CA yet).
type fixture struct {
	t      testing.TB
	ctx    context.Context
	st     store.Store
	clk    *clock
	kek    []byte
	a      *Authority
	tenant store.Tenant
	gen    *ids.Generator
}

func newFixture(t testing.TB, st store.Store) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), st: st, clk: newClock(), kek: make([]byte, 32)}
	_, _ = rand.Read(f.kek)
	f.gen = &ids.Generator{Now: f.clk.Now}
	f.a = f.authority(f.kek)
	if err := f.a.EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.tenant = f.newTenant("Contoso")
	return f
}

// sqliteFixture is newFixture on a fresh SQLite store.
func sqliteFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixture(t, storetest.OpenSQLite(t))
}

// authority returns another Authority on the fixture's store and clock: another replica, or
// one with another KEK.
func (f *fixture) authority(kek []byte) *Authority {
	f.t.Helper()
	a, err := New(Config{Store: f.st, KEK: kek, Now: f.clk.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) newTenant(name string) store.Tenant {
	f.t.Helper()
	tn := store.Tenant{ID: f.gen.MustNew(), Name: name, CreatedAt: f.clk.Now()}
	if err := f.st.CreateTenant(f.ctx, tn); err != nil {
		f.t.Fatal(err)
	}
	return tn
}

func (f *fixture) ensure(tenantID string) {
	f.t.Helper()
	if err := f.a.EnsureTenant(f.ctx, tenantID, ""); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) list(tenantID string) []Info {
	f.t.Helper()
	infos, err := f.a.List(f.ctx, tenantID)
	if err != nil {
		f.t.Fatal(err)
	}
	return infos
}

// issue issues an agent certificate for a new key and device.
func (f *fixture) issue(tenantID string, req LeafRequest) *Issued {
	f.t.Helper()
	if req.PublicKey == nil {
		req.PublicKey = &newKey(f.t).PublicKey
	}
	if req.DeviceID == "" {
		req.DeviceID = newDeviceID()
	}
	iss, err := f.a.Issue(f.ctx, tenantID, req)
	if err != nil {
		f.t.Fatal(err)
	}
	return iss
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newDeviceID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statuses returns the statuses of infos in order.
func statuses(infos []Info) []Status {
	out := make([]Status, len(infos))
	for i, in := range infos {
		out[i] = in.Status
	}
	return out
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// openssl runs `openssl verify` at the given time and returns its combined output and error.
// It skips the test if openssl is not installed.
func opensslVerify(t *testing.T, at time.Time, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed; the openssl cross-check needs it (apt-get install openssl)")
	}
	args = append([]string{"verify", "-attime", strconv.FormatInt(at.Unix(), 10)}, args...)
	out, err := exec.Command(path, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func writePEM(t *testing.T, name string, certs ...*x509.Certificate) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, PEM(certs...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// countingStore is the real store with a count of Update transactions and of
// ListCACertificates calls made directly on it (not inside Update), to show what works from
// memory.
type countingStore struct {
	store.Store
	lists   atomic.Int64
	updates atomic.Int64
}

func (c *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	c.updates.Add(1)
	return c.Store.Update(ctx, fn)
}

func (c *countingStore) ListCACertificates(ctx context.Context, tenantID string) ([]store.CACertificate, error) {
	c.lists.Add(1)
	return c.Store.ListCACertificates(ctx, tenantID)
}

func upperHexSHA1(b []byte) string {
	sum := sha1.Sum(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func openSQLiteB(b *testing.B) store.Store {
	return storetest.Open(b, "sqlite", storetest.SQLiteDSN(b))
}
