package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/enroll"
	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/swtpmtest"

	// The roots of trust the figures use.
	_ "github.com/rampart-iot/rampart/internal/rot/softrot"
	_ "github.com/rampart-iot/rampart/internal/rot/tpmrot"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// attestDevice enrolls, claims and measures a device on root of trust spec, registers its
// release, and returns a client ready to attest.
func attestDevice(t *testing.T, srv *servertest.Server, admin *client.Client, spec string) *attestclient.Client {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := rot.Open(ctx, spec, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rec, err := enroll.Record(ctx, r, "bench")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := rec.Marshal()
	if _, _, err := admin.ClaimDevice(ctx, srv.TenantID, v1.DeviceClaim{Enrollment: body}); err != nil {
		t.Fatal(err)
	}
	osFile := filepath.Join(dir, "os")
	_ = os.WriteFile(osFile, []byte("bench OS"), 0o644)
	exe, _ := os.Executable()
	in := measure.Inputs{AgentBinary: exe, OSBundle: osFile}
	log, err := measure.Boot(ctx, r, eventlog.DefaultPCR, in, filepath.Join(dir, "run", "log.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := log.Measurements()
	ver := "bench-" + m["os-bundle"][:8]
	if _, err := admin.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: ver, Measurements: m}); err != nil && !client.HasCode(err, v1.CodeConflict) {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CACertPEM)
	c := &attestclient.Client{RoT: r, Log: log, PCRs: []int{eventlog.DefaultPCR}, Server: srv.URL, RootCAs: roots, DeviceID: rec.DeviceID, Dir: dir}
	if _, err := c.Attest(ctx); err != nil { // the first attestation activates the AK
		t.Fatal(err)
	}
	return c
}

// attestOnce runs the protocol without installing files: nonce, evidence, verification, issue.
func attestOnce(ctx context.Context, c *attestclient.Client) error {
	n, err := c.Nonce(ctx)
	if err != nil {
		return err
	}
	req, _, err := c.Evidence(ctx, n)
	if err != nil {
		return err
	}
	_, err = c.Send(ctx, req)
	return err
}

// attestationFigures: attestations per second with the software root of trust against one
// quote-signature verification plus one certificate signature per attestation.
func attestationFigures(t *testing.T) []figure {
	srv := servertest.Start(t)
	admin := srv.Client(t, srv.AdminToken)
	// The service-side figure has many devices attest at once, as a fleet does: with few, a
	// durable commit's latency, not the service's work, sets the rate. The end-to-end figure
	// uses the first workers devices, since there each device's own work shares the cores.
	devices := make([]*attestclient.Client, serviceDevices)
	for i := range devices {
		devices[i] = attestDevice(t, srv, admin, "software")
	}
	ctx := context.Background()
	// The ceiling's inputs: a signed digest to verify and a CA to sign with.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	akKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256([]byte("quote"))
	sig, _ := ecdsa.SignASN1(rand.Reader, akKey, digest[:])
	// A device certificate's TBS to sign. x509.CreateCertificate would also verify the
	// signature it made, a second verification that is no part of the ceiling's definition (and
	// that the tenant CA does not do); the ceiling signs the TBS's digest, as the CA does.
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hex.EncodeToString(digest[:])},
		NotBefore: time.Now(), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	leafDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	leaf, _ := x509.ParseCertificate(leafDER)
	ceiling := func() float64 {
		var ops atomic.Int64
		cpu := cpuTime()
		v := rate(t, func(_, _ int) error {
			ops.Add(1)
			if !ecdsa.VerifyASN1(&akKey.PublicKey, digest[:], sig) {
				return fmt.Errorf("verify failed")
			}
			d := sha256.Sum256(leaf.RawTBSCertificate)
			_, err := ecdsa.SignASN1(rand.Reader, caKey, d[:])
			return err
		})
		t.Logf("ceiling: process CPU %v per verify + signature", ((cpuTime() - cpu) / time.Duration(ops.Load())).Round(time.Microsecond))
		return v
	}
	return []figure{{
		// The devices' own work (nonce request, fresh keys, quote) done beforehand, untimed: what
		// is timed is the service verifying and certifying, over kept-alive HTTPS.
		name:        "attestations, service side (evidence prepared)",
		ceilingName: "ECDSA verify + x509 leaf signature",
		measure: func() float64 {
			const per = 2000 / serviceDevices
			reqs := make([][]v1.AttestationRequest, len(devices))
			for w, c := range devices {
				for range per {
					n, err := c.Nonce(ctx)
					if err != nil {
						t.Fatal(err)
					}
					req, _, err := c.Evidence(ctx, n)
					if err != nil {
						t.Fatal(err)
					}
					reqs[w] = append(reqs[w], req)
				}
			}
			// The process's CPU time per attestation (the service's and the devices' ends of
			// the connections), which the machine's other load changes less than the rate.
			stop := startProfile(t)
			cpu0, t0 := cpuTime(), time.Now()
			v := count(t, len(devices), per, func(w, i int) error { _, err := devices[w].Send(ctx, reqs[w][i]); return err })
			cpu, wall := cpuTime()-cpu0, time.Since(t0)
			stop()
			t.Logf("service side: %d attestations, process CPU %v each, %.2f cores busy", len(devices)*per,
				(cpu / time.Duration(len(devices)*per)).Round(time.Microsecond), cpu.Seconds()/wall.Seconds())
			return v
		},
		ceiling: ceiling,
	}, {
		name:        "attestations, software RoT, HTTPS end to end",
		ceilingName: "ECDSA verify + x509 leaf signature",
		measure: func() float64 {
			return rate(t, func(w, _ int) error { return attestOnce(ctx, devices[w]) })
		},
		ceiling: ceiling,
	}}
}

// startProfile starts a CPU profile of the service-side timed window when
// RAMPART_BENCH_CPUPROFILE names a file (each round appends its number to the name), and
// returns the function that stops it.
func startProfile(t *testing.T) func() {
	name := os.Getenv("RAMPART_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	profileRound++
	f, err := os.Create(fmt.Sprintf("%s.%d", name, profileRound))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// profileRound numbers the profiles startProfile writes.
var profileRound int

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// serviceDevices is how many devices attest at once in the service-side figure.
const serviceDevices = 32

// attestationLatency measures one attestation on a TPM root of trust, when available.
func attestationLatency(t *testing.T, spec string) (time.Duration, error) {
	srv := servertest.Start(t)
	admin := srv.Client(t, srv.AdminToken)
	c := attestDevice(t, srv, admin, spec)
	ctx := context.Background()
	var samples []float64
	for range 5 {
		start := time.Now()
		if err := attestOnce(ctx, c); err != nil {
			return 0, err
		}
		samples = append(samples, float64(time.Since(start)))
	}
	return time.Duration(median(samples)), nil
}

// swtpmSpec starts a swtpm for the latency figure, or says why it cannot.
func swtpmSpec(t *testing.T) (string, error) {
	if !swtpmtest.Available() {
		return "", fmt.Errorf("swtpm is not installed (apt-get install swtpm swtpm-tools)")
	}
	spec, _ := swtpmtest.Start(t)
	return spec, nil
}
