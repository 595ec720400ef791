package attestsvc_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/enroll"
	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/swtpmtest"

	_ "github.com/rampart-iot/rampart/internal/rot/softrot"
	_ "github.com/rampart-iot/rampart/internal/rot/tpmrot"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// world is a running service with a tenant admin client.
type world struct {
	t     *testing.T
	srv   *servertest.Server
	admin *client.Client
	roots *x509.CertPool
	clk   *clock
	group string
}

func newWorld(t *testing.T, opts ...servertest.Option) *world {
	clk := &clock{now: time.Now().UTC()}
	srv := servertest.Start(t, append([]servertest.Option{servertest.Clock(clk.Now)}, opts...)...)
	w := &world{t: t, srv: srv, admin: srv.Client(t, srv.AdminToken), clk: clk}
	w.roots = x509.NewCertPool()
	w.roots.AppendCertsFromPEM(srv.CACertPEM)
	ctx := context.Background()
	p, err := w.admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Sensor", NoDefaultDeviceGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := w.admin.CreateDeviceGroup(ctx, srv.TenantID, p.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	w.group = g.ID
	return w
}

// device is an emulated device with a software root of trust, measured and enrolled.
type device struct {
	w      *world
	dir    string
	r      rot.RootOfTrust
	rec    *enrollment.Record
	log    *eventlog.Log
	inputs measure.Inputs
	c      *attestclient.Client
}

func (w *world) newDevice(claim bool) *device { return w.newDeviceOn("software", claim) }

// newDeviceOn makes a device on the root of trust that spec names.
func (w *world) newDeviceOn(spec string, claim bool) *device {
	t := w.t
	ctx := context.Background()
	d := &device{w: w, dir: t.TempDir()}
	r, err := rot.Open(ctx, spec, d.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	d.r = r
	if d.rec, err = enroll.Record(ctx, r, "test"); err != nil {
		t.Fatal(err)
	}
	osDir := filepath.Join(d.dir, "os")
	if err := os.MkdirAll(osDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(osDir, "VERSION"), []byte("test OS 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	d.inputs = measure.Inputs{PolicyFile: filepath.Join(d.dir, "policy.json"), AgentBinary: exe, OSBundle: osDir}
	if d.log, err = measure.Boot(ctx, r, eventlog.DefaultPCR, d.inputs, filepath.Join(d.dir, "run", "log.json")); err != nil {
		t.Fatal(err)
	}
	d.c = &attestclient.Client{RoT: r, Log: d.log, PCRs: []int{eventlog.DefaultPCR}, Server: w.srv.URL, RootCAs: w.roots,
		DeviceID: d.rec.DeviceID, Dir: d.dir}
	if claim {
		d.claim(w.admin, w.srv.TenantID, w.group)
	}
	return d
}

func (d *device) claim(c *client.Client, tenant, group string) {
	b, _ := d.rec.Marshal()
	if _, _, err := c.ClaimDevice(context.Background(), tenant, v1.DeviceClaim{Enrollment: b, DeviceGroupID: group}); err != nil {
		d.w.t.Fatal(err)
	}
}

// release registers the device's measurements as an OS release of the tenant.
func (d *device) release(c *client.Client, tenant, version string) *v1.OSRelease {
	m := map[string]string{}
	for k, v := range d.log.Measurements() {
		m[k] = v
	}
	r, err := c.CreateOSRelease(context.Background(), tenant, v1.OSReleaseCreate{Version: version, Measurements: m})
	if err != nil {
		d.w.t.Fatal(err)
	}
	return r
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	var ae *attestclient.Error
	if !errors.As(err, &ae) {
		t.Fatalf("want a refusal from the service, got %v", err)
	}
	if ae.Status != 403 || ae.Code != v1.CodeAttestationFailed {
		t.Fatalf("refusal %d %s: %s", ae.Status, ae.Code, ae.Message)
	}
	return ae.Reason
}

func TestAttestIssuesCertificatesThatVerify(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d := w.newDevice(true)
	d.release(w.admin, w.srv.TenantID, "1.0")
	d.c.Components = []string{"6a9f1c3e-0000-4000-8000-000000000001"}
	res, err := d.c.Attest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.OSRelease != "1.0" {
		t.Errorf("release %q", res.OSRelease)
	}
	if got := res.NotAfter.Sub(w.clk.Now()); got < 23*time.Hour || got > 25*time.Hour {
		t.Errorf("certificate lifetime %s, want about 24h", got)
	}
	// The agent's certificate and chain verify against the tenant's downloadable bundle.
	certPath := filepath.Join(d.dir, "certs", "agent.crt")
	leafPEM, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(leafPEM)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	bundlePEM, err := w.admin.CACertificateChain(ctx, w.srv.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(bundlePEM))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: w.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify against the bundle: %v", err)
	}
	if leaf.Subject.CommonName != d.rec.DeviceID || len(leaf.URIs) != 1 ||
		leaf.URIs[0].String() != "spiffe://"+w.srv.TenantID+"/device/"+d.rec.DeviceID {
		t.Fatalf("leaf names %q %v", leaf.Subject.CommonName, leaf.URIs)
	}
	if st, _ := os.Stat(filepath.Join(d.dir, "certs", "agent.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode())
	}
	if _, err := os.Stat(filepath.Join(d.dir, "certs", "app-6a9f1c3e-0000-4000-8000-000000000001.crt")); err != nil {
		t.Errorf("no app certificate: %v", err)
	}
	// openssl agrees, when it is installed.
	if path, err := exec.LookPath("openssl"); err == nil {
		bundle := filepath.Join(t.TempDir(), "bundle.pem")
		_ = os.WriteFile(bundle, []byte(bundlePEM), 0o644)
		out, err := exec.Command(path, "verify", "-CAfile", bundle, "-untrusted", filepath.Join(d.dir, "certs", "chain.pem"), certPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Fatalf("openssl verify: %v: %s", err, out)
		}
	} else {
		t.Log("openssl not installed; skipped the openssl verify half of this test")
	}
	// Mutual TLS with the new certificate works, and names the device.
	self, err := d.c.Self(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if self.DeviceID != d.rec.DeviceID || self.TenantID != w.srv.TenantID || self.DeviceGroupID != w.group {
		t.Fatalf("self %+v", self)
	}
	// The service recorded the pass and activated the AK.
	dev, err := w.admin.GetDevice(ctx, w.srv.TenantID, d.rec.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if !dev.AKActivated || dev.LastAttestation == nil || dev.LastAttestation.Result != "pass" || dev.LastAttestation.CertificateExpires.IsZero() {
		t.Fatalf("device after attestation: %+v %+v", dev, dev.LastAttestation)
	}
	// A second attestation needs no activation challenge.
	n, err := d.c.Nonce(ctx)
	if err != nil || n.Activation != nil {
		t.Fatalf("second nonce: %v %+v", err, n.Activation)
	}
	// Nonces name the firmware PCRs, which a device without a firmware log leaves out.
	if !slices.Equal(n.FirmwarePCRs, attest.FirmwarePCRs) || !slices.Equal(n.PCRs, []int{14}) {
		t.Fatalf("nonce PCRs %v, firmware PCRs %v", n.PCRs, n.FirmwarePCRs)
	}
}

func TestGroupCertificateLifetime(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	secs := int64(600)
	if _, err := w.admin.UpdateDeviceGroup(ctx, w.srv.TenantID, w.group, v1.DeviceGroupUpdate{CertLifetimeSeconds: &secs}); err != nil {
		t.Fatal(err)
	}
	d := w.newDevice(true)
	d.release(w.admin, w.srv.TenantID, "1.0")
	res, err := d.c.Attest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.NotAfter.Sub(w.clk.Now()); got > 11*time.Minute || got < 9*time.Minute {
		t.Fatalf("lifetime %s, want 10m", got)
	}
	if got := res.RenewAfter.Sub(w.clk.Now()); got > 6*time.Minute || got < 4*time.Minute {
		t.Fatalf("renew after %s, want half the lifetime", got)
	}
}

func TestAttacksAreRefusedAndRecorded(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	a := w.newDevice(true)
	b := w.newDevice(true)
	a.release(w.admin, w.srv.TenantID, "1.0")
	// Activate both AKs first, so later cases reach the checks they aim at.
	for _, d := range []*device{a, b} {
		if _, err := d.c.Attest(ctx); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("replayed nonce", func(t *testing.T) {
		n, _ := a.c.Nonce(ctx)
		req, _, err := a.c.Evidence(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.c.Send(ctx, req); err != nil {
			t.Fatal(err)
		}
		_, err = a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonNonceUnknown {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("expired nonce", func(t *testing.T) {
		n, _ := a.c.Nonce(ctx)
		req, _, _ := a.c.Evidence(ctx, n)
		w.clk.advance(2 * time.Minute)
		_, err := a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonNonceExpired {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("another device's nonce", func(t *testing.T) {
		n, _ := b.c.Nonce(ctx)
		req, _, _ := a.c.Evidence(ctx, n)
		_, err := a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonNonceUnknown {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("quote from a different AK", func(t *testing.T) {
		n, _ := a.c.Nonce(ctx)
		req, _, _ := b.c.Evidence(ctx, n)
		req.DeviceID = a.rec.DeviceID
		_, err := a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonQuoteSignature {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("tampered quote", func(t *testing.T) {
		n, _ := a.c.Nonce(ctx)
		req, _, _ := a.c.Evidence(ctx, n)
		req.Quote.Attest[len(req.Quote.Attest)-3] ^= 0x40
		_, err := a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonQuoteSignature {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("event log that does not replay", func(t *testing.T) {
		n, _ := a.c.Nonce(ctx)
		req, _, _ := a.c.Evidence(ctx, n)
		l := eventlog.New()
		for name, d := range a.log.Measurements() {
			raw, _ := hex.DecodeString(d)
			raw[0] ^= 1
			_ = l.Append(eventlog.DefaultPCR, name, "", raw)
		}
		req.EventLog, _ = l.Marshal()
		_, err := a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonEventLogMismatch {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("tampered event log", func(t *testing.T) {
		n, _ := a.c.Nonce(ctx)
		req, _, _ := a.c.Evidence(ctx, n)
		req.EventLog = json.RawMessage(strings.Replace(string(req.EventLog), `"recnum":0`, `"recnum":9`, 1))
		_, err := a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonEventLogMalformed {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("oversized event log", func(t *testing.T) {
		n, _ := a.c.Nonce(ctx)
		req, _, _ := a.c.Evidence(ctx, n)
		req.EventLog = json.RawMessage(`{"version":1,"records":[],"pad":"` + strings.Repeat("x", eventlog.MaxSize) + `"}`)
		_, err := a.c.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonEventLogMalformed {
			t.Fatalf("reason %s", r)
		}
		req.EventLog = json.RawMessage(`"` + strings.Repeat("x", 3<<20) + `"`)
		_, err = a.c.Send(ctx, req)
		var ae *attestclient.Error
		if !errors.As(err, &ae) || ae.Status != 413 {
			t.Fatalf("3 MiB body: %v", err)
		}
	})
	t.Run("unclaimed device", func(t *testing.T) {
		u := w.newDevice(false)
		_, err := u.c.Attest(ctx)
		if r := reasonOf(t, err); r != attest.ReasonDeviceUnknown {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("AK not bound to the EK", func(t *testing.T) {
		// A record that pairs a real EK with an AK from elsewhere: the device cannot answer
		// the challenge, and a guessed answer is refused.
		m := w.newDevice(false)
		rec := *m.rec
		rec.AKPublic = b.rec.AKPublic
		body, _ := rec.Marshal()
		if _, _, err := w.admin.ClaimDevice(ctx, w.srv.TenantID, v1.DeviceClaim{Enrollment: body}); err != nil {
			t.Fatal(err)
		}
		n, err := m.c.Nonce(ctx)
		if err != nil || n.Activation == nil {
			t.Fatalf("nonce: %v, activation %v", err, n.Activation)
		}
		if _, err := m.r.ActivateCredential(ctx, n.Activation.IDObject, n.Activation.EncryptedSecret); err == nil {
			t.Fatal("a TPM without that AK recovered the credential")
		}
		bc := &attestclient.Client{RoT: b.r, Log: b.log, PCRs: b.c.PCRs, Server: b.c.Server, RootCAs: b.c.RootCAs,
			DeviceID: m.rec.DeviceID, Dir: b.dir}
		req, _, err := bc.Evidence(ctx, v1.AttestationNonce{Nonce: n.Nonce, PCRs: n.PCRs})
		if err != nil {
			t.Fatal(err)
		}
		req.ActivationSecret = make([]byte, attest.ActivationSecretSize)
		_, err = bc.Send(ctx, req)
		if r := reasonOf(t, err); r != attest.ReasonActivationFailed {
			t.Fatalf("reason %s", r)
		}
	})
	t.Run("measurement not in policy, reason visible", func(t *testing.T) {
		rels, _ := w.admin.AllOSReleases(ctx, w.srv.TenantID)
		for _, r := range rels {
			if err := w.admin.DeleteOSRelease(ctx, w.srv.TenantID, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		_, err := a.c.Attest(ctx)
		if r := reasonOf(t, err); r != attest.ReasonMeasurementRefused {
			t.Fatalf("reason %s", r)
		}
		dev, _ := w.admin.GetDevice(ctx, w.srv.TenantID, a.rec.DeviceID)
		if dev.LastAttestation == nil || dev.LastAttestation.Reason != attest.ReasonMeasurementRefused || dev.LastAttestation.Message == "" {
			t.Fatalf("last attestation %+v", dev.LastAttestation)
		}
		hist, _ := w.admin.ListAttestations(ctx, w.srv.TenantID, a.rec.DeviceID, client.ListOptions{})
		if len(hist.Items) == 0 || hist.Items[0].Reason != attest.ReasonMeasurementRefused {
			t.Fatalf("history %+v", hist.Items)
		}
		a.release(w.admin, w.srv.TenantID, "1.0-again")
	})
	t.Run("disabled device, then its certificate", func(t *testing.T) {
		if _, err := a.c.Attest(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.c.Self(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := w.admin.DisableDevice(ctx, w.srv.TenantID, a.rec.DeviceID); err != nil {
			t.Fatal(err)
		}
		_, err := a.c.Attest(ctx)
		if r := reasonOf(t, err); r != attest.ReasonDeviceDisabled {
			t.Fatalf("reason %s", r)
		}
		var ae *attestclient.Error
		if _, err := a.c.Self(ctx); !errors.As(err, &ae) || ae.Status != 401 {
			t.Fatalf("disabled device's certificate accepted: %v", err)
		}
		if _, err := w.admin.EnableDevice(ctx, w.srv.TenantID, a.rec.DeviceID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.c.Self(ctx); err != nil {
			t.Fatalf("re-enabled device refused: %v", err)
		}
	})
	t.Run("expired client certificate", func(t *testing.T) {
		w.clk.advance(25 * time.Hour)
		var ae *attestclient.Error
		if _, err := b.c.Self(ctx); !errors.As(err, &ae) || ae.Status != 401 {
			t.Fatalf("expired certificate accepted: %v", err)
		}
		if _, err := b.c.Attest(ctx); err != nil {
			t.Fatalf("re-attesting after expiry: %v", err)
		}
		if _, err := b.c.Self(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		resp, err := (&httpClient{roots: w.roots}).get(w.srv.URL + "/v1/device/self")
		if err != nil || resp != 401 {
			t.Fatalf("%v %d", err, resp)
		}
	})
}

// TestTenantsAreIsolated: a device of another tenant attests against its own tenant's
// releases and CA, never this one's.
func TestTenantsAreIsolated(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	other, err := w.admin.CreateTenant(ctx, v1.TenantCreate{Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	d := w.newDevice(false)
	d.claim(w.admin, other.ID, "")
	d.release(w.admin, w.srv.TenantID, "1.0") // the release is in the wrong tenant
	_, err = d.c.Attest(ctx)
	if r := reasonOf(t, err); r != attest.ReasonMeasurementRefused {
		t.Fatalf("reason %s", r)
	}
	d.release(w.admin, other.ID, "1.0")
	if _, err := d.c.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	self, err := d.c.Self(ctx)
	if err != nil || self.TenantID != other.ID {
		t.Fatalf("%v %+v", err, self)
	}
	// The certificate does not verify against the first tenant's bundle.
	pemA, _ := w.admin.CACertificateChain(ctx, w.srv.TenantID)
	pemB, _ := w.admin.CACertificateChain(ctx, other.ID)
	leafPEM, _ := os.ReadFile(filepath.Join(d.dir, "certs", "agent.crt"))
	blk, _ := pem.Decode(leafPEM)
	leaf, _ := x509.ParseCertificate(blk.Bytes)
	chain, _ := os.ReadFile(filepath.Join(d.dir, "certs", "chain.pem"))
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM(chain)
	onlyTenantA := x509.NewCertPool()
	for rest := []byte(pemA); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, _ := x509.ParseCertificate(b.Bytes)
		if c.Subject.CommonName != "" && !strings.Contains(pemB, string(pem.EncodeToMemory(b))) {
			onlyTenantA.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: onlyTenantA, CurrentTime: w.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatal("another tenant's device certificate verifies against this tenant's CA")
	}
}

func TestSoftwareRootRefusedInProduction(t *testing.T) {
	w := newWorld(t, servertest.AllowSoftwareRootOfTrust(true))
	ctx := context.Background()
	d := w.newDevice(true)
	d.release(w.admin, w.srv.TenantID, "1.0")
	if _, err := d.c.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	leafPEM, _ := os.ReadFile(filepath.Join(d.dir, "certs", "agent.crt"))
	blk, _ := pem.Decode(leafPEM)
	leaf, _ := x509.ParseCertificate(blk.Bytes)
	if len(leaf.Subject.OrganizationalUnit) == 0 || !strings.Contains(strings.Join(leaf.Subject.OrganizationalUnit, ","), "development only") {
		t.Fatalf("software-rooted certificate not marked: %v", leaf.Subject)
	}
}

// TestAttestOnTPMSimulator runs the protocol on real TPM 2.0 commands in-process.
func TestAttestOnTPMSimulator(t *testing.T) {
	if !tpmSimAvailable() {
		t.Skip("the tpm-sim root of trust needs cgo (CGO_ENABLED=1) and libssl-dev")
	}
	w := newWorld(t)
	ctx := context.Background()
	d := w.newDeviceOn("tpm-sim", true)
	if d.rec.RootOfTrust != "tpm" {
		t.Fatalf("root of trust %q", d.rec.RootOfTrust)
	}
	d.release(w.admin, w.srv.TenantID, "1.0")
	if _, err := d.c.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.c.Self(ctx); err != nil {
		t.Fatal(err)
	}
	dev, _ := w.admin.GetDevice(ctx, w.srv.TenantID, d.rec.DeviceID)
	if !dev.AKActivated || dev.LastAttestation.Result != "pass" {
		t.Fatalf("device %+v", dev)
	}
}

// TestAttestOnSWTPMWithEKChain runs the protocol against a swtpm process whose EK certificate
// chains to its local CA, which the service is configured to trust; a service that trusts
// another CA refuses the same device.
func TestAttestOnSWTPMWithEKChain(t *testing.T) {
	swtpmtest.Require(t)
	spec, localCA := swtpmtest.Start(t)
	roots := filepath.Join(t.TempDir(), "ek-roots.pem")
	var pemRoots []byte
	for _, c := range localCA {
		pemRoots = append(pemRoots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(roots, pemRoots, 0o644); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, servertest.EKRoots(roots, true))
	ctx := context.Background()
	d := w.newDeviceOn(spec, true)
	if len(d.rec.EKCertificate) == 0 {
		t.Fatal("swtpm's record has no EK certificate")
	}
	d.release(w.admin, w.srv.TenantID, "1.0")
	if _, err := d.c.Attest(ctx); err != nil {
		t.Fatal(err)
	}

	// A TPM whose EK certificate comes from another vendor's CA is refused.
	spec2, otherCA := swtpmtest.Start(t)
	if otherCA[0].Equal(localCA[0]) {
		t.Fatal("the two swtpm instances share a local CA; the test needs distinct ones")
	}
	d2 := w.newDeviceOn(spec2, true)
	d2.release(w.admin, w.srv.TenantID, "1.0-other")
	_, err := d2.c.Attest(ctx)
	if r := reasonOf(t, err); r != attest.ReasonEKCertUntrusted {
		t.Fatalf("reason %s", r)
	}
	// And a TPM device without an EK certificate is refused when policy requires one.
	if !tpmSimAvailable() {
		return
	}
	d3 := w.newDeviceOn("tpm-sim", true)
	d3.release(w.admin, w.srv.TenantID, "sim")
	_, err = d3.c.Attest(ctx)
	if r := reasonOf(t, err); r != attest.ReasonEKCertMissing {
		t.Fatalf("reason %s", r)
	}
}

func tpmSimAvailable() bool {
	for _, b := range rot.Backends() {
		if b == "tpm-sim" {
			return true
		}
	}
	return false
}
