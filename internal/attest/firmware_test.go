package attest

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	gattest "github.com/google/go-attestation/attest"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/eventlog"
)

// capturedBoot is testdata/firmware-boot.json: a real measured boot (QEMU, OVMF, swtpm, a UKI)
// captured by internal/measuredboot's TestMeasuredBootAttestation with
// RAMPART_CAPTURE_FIRMWARE set.
type capturedBoot struct {
	Device struct {
		ID       string `json:"id"`
		EKPublic []byte `json:"ek_public"`
		AKPublic []byte `json:"ak_public"`
	} `json:"device"`
	Request      v1.AttestationRequest `json:"request"`
	Measurements map[string]string     `json:"release_measurements"`
}

func loadCapturedBoot(t testing.TB) capturedBoot {
	t.Helper()
	b, err := os.ReadFile("testdata/firmware-boot.json")
	if err != nil {
		t.Fatal(err)
	}
	var c capturedBoot
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c capturedBoot) inputs() (Device, Challenge, Evidence, Policy) {
	r := c.Request
	dev := Device{ID: c.Device.ID, RootOfTrust: enrollment.RootOfTrustTPM, EKPublic: c.Device.EKPublic, AKPublic: c.Device.AKPublic}
	act := sha256.Sum256(r.ActivationSecret)
	ch := Challenge{Nonce: r.Nonce, ExpiresAt: time.Unix(1_900_000_000, 0), ActivationHash: act[:]}
	keys := make([]Key, len(r.Keys))
	for i, k := range r.Keys {
		keys[i] = Key{Component: k.Component, PublicKey: k.PublicKey}
	}
	values := map[int][]byte{}
	for p, v := range r.PCRValues {
		values[p] = bytes.Clone(v)
	}
	ev := Evidence{ActivationSecret: r.ActivationSecret, QuoteAttest: r.Quote.Attest, QuoteSignature: r.Quote.Signature,
		EventLog: r.EventLog, Keys: keys, FirmwareEventLog: bytes.Clone(r.FirmwareEventLog), PCRValues: values}
	pol := Policy{Releases: []Release{{ID: "r1", Version: "uki-1", Measurements: c.Measurements}}}
	return dev, ch, ev, pol
}

var capturedNow = func() time.Time { return time.Unix(1_800_000_000, 0) }

// TestCapturedBoot verifies the captured real boot: the swtpm quote over PCRs 0–9, 11–14, the
// OVMF + systemd-stub + Linux event log, and the monitor's log, against the release that passed.
func TestCapturedBoot(t *testing.T) {
	c := loadCapturedBoot(t)
	dev, ch, ev, pol := c.inputs()
	res, fl := (&Verifier{Now: capturedNow}).Verify(dev, ch, ev, pol)
	if fl != nil {
		t.Fatal(fl)
	}
	if res.Release.ID != "r1" || res.Firmware == nil || !res.Activated {
		t.Fatalf("result %+v", res)
	}
	for _, p := range FirmwarePCRs {
		if res.Measurements[FirmwarePCRMeasurement(p)] != hex.EncodeToString(ev.PCRValues[p]) {
			t.Errorf("PCR %d: measured %q, quoted %x", p, res.Measurements[FirmwarePCRMeasurement(p)], ev.PCRValues[p])
		}
	}
	if res.Firmware.SecureBoot != SecureBootDisabled || len(res.Firmware.BootApplications) != 2 || res.Firmware.Events < 10 {
		t.Errorf("firmware %+v: want Secure Boot disabled, the UKI and its kernel as boot applications", res.Firmware)
	}
	if _, ok := res.Measurements[FirmwarePCRMeasurement(10)]; ok {
		t.Error("PCR 10 (IMA) recorded as a firmware measurement")
	}
}

func TestCapturedBootRefused(t *testing.T) {
	c := loadCapturedBoot(t)
	// A PCR 4 event digest: the UKI's Authenticode digest, as the firmware logged it.
	_, _, ev0, _ := c.inputs()
	uki, err := hex.DecodeString(c.Measurements["firmware-pcr4"])
	if err != nil || len(uki) != 32 {
		t.Fatal("no golden PCR 4 in the capture")
	}
	el, err := gattest.ParseEventLog(ev0.FirmwareEventLog)
	if err != nil {
		t.Fatal(err)
	}
	var app []byte
	for _, e := range el.Events(gattest.HashSHA256) {
		if e.Index == 4 && e.Type == evEFIBootServicesApplication {
			app = e.Digest
			break
		}
	}
	appAt := bytes.Index(ev0.FirmwareEventLog, app)
	if app == nil || appAt < 0 {
		t.Fatal("no boot application event in the captured log")
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Evidence, *Policy)
		reason string
	}{
		{"wrong golden PCR 4", func(_ *Evidence, p *Policy) {
			p.Releases[0].Measurements["firmware-pcr4"] = hexsum("another kernel")
		}, ReasonFirmwareRefused},
		{"golden PCR 10 not measured", func(_ *Evidence, p *Policy) {
			p.Releases[0].Measurements["firmware-pcr10"] = hexsum("ima")
		}, ReasonFirmwareRefused},
		{"software differs", func(_ *Evidence, p *Policy) {
			p.Releases[0].Measurements["agent"] = hexsum("another agent")
		}, ReasonMeasurementRefused},
		{"no firmware log", func(e *Evidence, _ *Policy) { e.FirmwareEventLog = nil }, ReasonPCRSelection},
		{"firmware PCRs policy differs", func(_ *Evidence, p *Policy) { p.FirmwarePCRs = []int{0, 1, 2, 3, 4, 5, 6, 7} }, ReasonPCRSelection},
		{"PCR value altered", func(e *Evidence, _ *Policy) { e.PCRValues[0][0] ^= 1 }, ReasonPCRValuesMismatch},
		{"PCR value missing", func(e *Evidence, _ *Policy) { delete(e.PCRValues, 7) }, ReasonPCRValuesMismatch},
		{"PCR value extra", func(e *Evidence, _ *Policy) { e.PCRValues[10] = make([]byte, 32); delete(e.PCRValues, 7) }, ReasonPCRValuesMismatch},
		{"PCR value short", func(e *Evidence, _ *Policy) { e.PCRValues[7] = e.PCRValues[7][:20] }, ReasonPCRValuesMismatch},
		{"event digest altered", func(e *Evidence, _ *Policy) { e.FirmwareEventLog[appAt] ^= 1 }, ReasonFirmwareLogMismatch},
		{"log truncated", func(e *Evidence, _ *Policy) { e.FirmwareEventLog = e.FirmwareEventLog[:len(e.FirmwareEventLog)-7] }, ReasonFirmwareLogMalformed},
		{"log garbage", func(e *Evidence, _ *Policy) { e.FirmwareEventLog = []byte("not a TCG event log at all") }, ReasonFirmwareLogMalformed},
		{"log too large", func(e *Evidence, _ *Policy) {
			e.FirmwareEventLog = append(e.FirmwareEventLog, make([]byte, MaxFirmwareEventLog)...)
		}, ReasonFirmwareLogMalformed},
		{"monitor log altered", func(e *Evidence, _ *Policy) {
			e.EventLog = bytes.Replace(e.EventLog, []byte(c.Measurements["agent"]), []byte(hexsum("x")), 1)
		}, ReasonEventLogMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, ch, ev, pol := loadCapturedBoot(t).inputs()
			tc.mutate(&ev, &pol)
			_, fl := (&Verifier{Now: capturedNow}).Verify(dev, ch, ev, pol)
			if fl == nil || fl.Reason != tc.reason {
				t.Fatalf("got %v, want reason %s", fl, tc.reason)
			}
			if tc.reason == ReasonFirmwareRefused && !strings.Contains(fl.Message, "firmware-pcr") {
				t.Errorf("message %q does not name the firmware measurement", fl.Message)
			}
		})
	}
}

// TestCapturedBootAnyFirmware: a release that lists no firmware values accepts any firmware
// that replays, and still records its measurements.
func TestCapturedBootAnyFirmware(t *testing.T) {
	dev, ch, ev, pol := loadCapturedBoot(t).inputs()
	monitor, _ := splitMeasurements(pol.Releases[0].Measurements)
	pol.Releases = []Release{{ID: "sw", Version: "sw-only", Measurements: monitor}}
	res, fl := (&Verifier{Now: capturedNow}).Verify(dev, ch, ev, pol)
	if fl != nil {
		t.Fatal(fl)
	}
	if res.Release.ID != "sw" || res.Measurements["firmware-pcr0"] == "" {
		t.Fatalf("result %+v", res)
	}
}

// firmwareFixture is a fixture device (software AK) that quotes the captured boot's firmware
// log replayed into its PCRs, with extra events appended to the log.
func firmwareFixture(t *testing.T, extra ...fwEvent) (*fixture, Challenge, Evidence) {
	t.Helper()
	c := loadCapturedBoot(t)
	raw := c.Request.FirmwareEventLog
	el, err := gattest.ParseEventLog(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Clone(raw)
	for _, e := range extra { // a crypto-agile log is its header, then events end to end
		raw = append(raw, encodeEvent(el.Algs, e)...)
	}
	if el, err = gattest.ParseEventLog(raw); err != nil {
		t.Fatal(err)
	}
	values := map[int][]byte{}
	for p := 0; p < 24; p++ {
		values[p] = make([]byte, 32)
	}
	for _, e := range el.Events(gattest.HashSHA256) {
		if e.Type == evNoAction {
			continue
		}
		h := sha256.New()
		h.Write(values[e.Index])
		h.Write(e.Digest)
		values[e.Index] = h.Sum(nil)
	}
	f := newFixture(t)
	f.dev.RootOfTrust = enrollment.RootOfTrustTPM
	for p, v := range f.log.Replay(map[int][]byte{eventlog.DefaultPCR: values[eventlog.DefaultPCR]}) {
		values[p] = v
	}
	pcrs := union([]int{eventlog.DefaultPCR}, FirmwarePCRs)
	for p := range values {
		if !contains(pcrs, p) {
			delete(values, p)
		}
	}
	for _, p := range pcrs {
		if values[p] == nil {
			values[p] = make([]byte, 32)
		}
	}
	logBytes, _ := f.log.Marshal()
	attest, sig := f.quote(pcrs, values, QualifyingData(f.nonce, f.keys))
	return f, Challenge{Nonce: f.nonce, ExpiresAt: f.now.Add(time.Minute)},
		Evidence{QuoteAttest: attest, QuoteSignature: sig, EventLog: logBytes, Keys: f.keys, FirmwareEventLog: raw, PCRValues: values}
}

type fwEvent struct {
	pcr  int
	typ  uint32
	data []byte
}

// encodeEvent encodes a TCG_PCR_EVENT2 with a digest of data in every bank of algs.
func encodeEvent(algs []gattest.HashAlg, e fwEvent) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(e.pcr))
	b = binary.LittleEndian.AppendUint32(b, e.typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(algs)))
	for _, a := range algs {
		b = binary.LittleEndian.AppendUint16(b, uint16(a))
		switch a {
		case gattest.HashSHA1:
			d := sha1.Sum(e.data)
			b = append(b, d[:]...)
		case gattest.HashSHA256:
			d := sha256.Sum256(e.data)
			b = append(b, d[:]...)
		case 0x000C: // SHA-384
			d := sha512.Sum384(e.data)
			b = append(b, d[:]...)
		case 0x000D: // SHA-512
			d := sha512.Sum512(e.data)
			b = append(b, d[:]...)
		default:
			panic("unexpected hash algorithm in the captured log")
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.data)))
	return append(b, e.data...)
}

// TestFirmwareShimOnMonitorPCR: a firmware log that extends the monitor's PCR (as shim does
// PCR 14) is replayed first, and the monitor's log continues from there.
func TestFirmwareShimOnMonitorPCR(t *testing.T) {
	f, ch, ev := firmwareFixture(t, fwEvent{pcr: 14, typ: 0x0d /* EV_IPL */, data: []byte("MokList\x00")})
	res, fl := f.verify(ch, ev)
	if fl != nil {
		t.Fatal(fl)
	}
	if res.Release.ID != "r1" || res.Firmware == nil {
		t.Fatalf("result %+v", res)
	}
	// Without the shim event, the monitor's log does not account for PCR 14.
	f2, ch2, ev2 := firmwareFixture(t)
	ev2.PCRValues = ev.PCRValues
	ev2.QuoteAttest, ev2.QuoteSignature = f2.quote(union([]int{14}, FirmwarePCRs), ev.PCRValues, QualifyingData(f2.nonce, f2.keys))
	if _, fl := f2.verify(ch2, ev2); fl == nil || fl.Reason != ReasonEventLogMismatch {
		t.Fatalf("got %v, want %s", fl, ReasonEventLogMismatch)
	}
}

// TestFirmwareUnexplainedPCR: a firmware PCR that no event explains must be zero.
func TestFirmwareUnexplainedPCR(t *testing.T) {
	f, ch, ev := firmwareFixture(t)
	ev.PCRValues[13] = sum("extended outside the firmware log")
	ev.QuoteAttest, ev.QuoteSignature = f.quote(union([]int{14}, FirmwarePCRs), ev.PCRValues, QualifyingData(f.nonce, f.keys))
	if _, fl := f.verify(ch, ev); fl == nil || fl.Reason != ReasonFirmwareLogMismatch {
		t.Fatalf("got %v, want %s", fl, ReasonFirmwareLogMismatch)
	}
	// And an appended event on PCR 13 explains it.
	f, ch, ev = firmwareFixture(t, fwEvent{pcr: 13, typ: 0x0d, data: []byte("sysext")})
	res, fl := f.verify(ch, ev)
	if fl != nil {
		t.Fatal(fl)
	}
	if res.Measurements["firmware-pcr13"] == hex.EncodeToString(make([]byte, 32)) {
		t.Fatal("PCR 13 recorded as zero")
	}
}

// TestFirmwarePrefixReserved: the monitor's log may not name firmware measurements.
func TestFirmwarePrefixReserved(t *testing.T) {
	f := newFixture(t)
	if err := f.log.Append(eventlog.DefaultPCR, "firmware-pcr4", "", sum("forged")); err != nil {
		t.Skipf("the event log refuses the name itself: %v", err)
	}
	ch, ev := f.evidence()
	if _, fl := f.verify(ch, ev); fl == nil || fl.Reason != ReasonEventLogMalformed {
		t.Fatalf("got %v, want %s", fl, ReasonEventLogMalformed)
	}
}

// FuzzFirmwareEventLog feeds hostile firmware logs to the verifier's parsing and replay: the
// log is parsed, replayed against the PCR values it claims, and its Secure Boot state read.
// Nothing may panic or run away.
func FuzzFirmwareEventLog(f *testing.F) {
	f.Add(loadCapturedBoot(f).Request.FirmwareEventLog)
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, raw []byte) {
		el, err := ParseFirmwareEventLog(raw)
		if err != nil {
			return
		}
		values := map[int][]byte{}
		for _, e := range el.Events(gattest.HashSHA256) {
			if e.Type == evNoAction || len(e.Digest) != 32 || e.Index < 0 || e.Index > 23 {
				continue
			}
			cur := values[e.Index]
			if cur == nil {
				cur = make([]byte, 32)
			}
			h := sha256.New()
			h.Write(cur)
			h.Write(e.Digest)
			values[e.Index] = h.Sum(nil)
		}
		var pcrs []gattest.PCR
		for _, p := range FirmwarePCRs {
			v := values[p]
			if v == nil {
				v = make([]byte, 32)
			}
			pcrs = append(pcrs, gattest.PCR{Index: p, Digest: v, DigestAlg: crypto.SHA256})
		}
		events, err := verifyFirmwareLog(el, pcrs)
		if err == nil {
			_, _ = parseSecureboot(events)
		}
		_, _ = monitorStart(el, []int{eventlog.DefaultPCR})
	})
}

// TestFirmwarePCRSubset: a policy may require a subset of the firmware PCRs (the server's
// ca.firmware_pcrs); a quote over exactly that subset passes, with only those PCRs measured,
// and the firmware log's events on other PCRs are not replayed.
func TestFirmwarePCRSubset(t *testing.T) {
	f, ch, ev := firmwareFixture(t)
	subset := []int{0, 2, 4, 7}
	f.policy.FirmwarePCRs = subset
	pcrs := union([]int{eventlog.DefaultPCR}, subset)
	values := map[int][]byte{}
	for _, p := range pcrs {
		values[p] = ev.PCRValues[p]
	}
	ev.PCRValues = values
	ev.QuoteAttest, ev.QuoteSignature = f.quote(pcrs, values, QualifyingData(f.nonce, f.keys))
	res, fl := f.verify(ch, ev)
	if fl != nil {
		t.Fatal(fl)
	}
	for _, p := range FirmwarePCRs {
		_, measured := res.Measurements[FirmwarePCRMeasurement(p)]
		if measured != contains(subset, p) {
			t.Errorf("PCR %d measured %v, want %v", p, measured, contains(subset, p))
		}
	}
	// The full set is now a selection policy refuses.
	f, ch, ev = firmwareFixture(t)
	f.policy.FirmwarePCRs = subset
	if _, fl := f.verify(ch, ev); fl == nil || fl.Reason != ReasonPCRSelection {
		t.Fatalf("a quote over every firmware PCR under a subset policy: %v, want %s", fl, ReasonPCRSelection)
	}
}
