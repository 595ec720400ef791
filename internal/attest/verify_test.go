package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/strictjson"

	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/eventlog"
)

// fixture is a device with a software AK that makes quotes the way a TPM does.
type fixture struct {
	t      testing.TB
	dev    Device
	ak     *ecdsa.PrivateKey
	nonce  []byte
	keys   []Key
	log    *eventlog.Log
	now    time.Time
	policy Policy
}

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func newFixture(t testing.TB) *fixture {
	d := enrollmenttest.New(t, enrollmenttest.Options{})
	f := &fixture{t: t, ak: d.AK, now: time.Unix(1_800_000_000, 0)}
	f.dev = Device{ID: d.Record.DeviceID, RootOfTrust: "software", EKPublic: d.Record.EKPublic, AKPublic: d.Record.AKPublic}
	f.nonce = make([]byte, 32)
	_, _ = rand.Read(f.nonce)
	sk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&sk.PublicKey)
	f.keys = []Key{{Component: "", PublicKey: spki}}
	f.log = eventlog.New()
	for _, m := range []string{eventlog.MeasurePolicy, eventlog.MeasureAgent, eventlog.MeasureOSBundle} {
		if err := f.log.Append(eventlog.DefaultPCR, m, "", sum("v1 "+m)); err != nil {
			t.Fatal(err)
		}
	}
	f.policy = Policy{AllowSoftwareRootOfTrust: true, Releases: []Release{
		{ID: "r0", Version: "0.9", Measurements: map[string]string{"policy": hexsum("v0 policy"), "agent": hexsum("v0 agent"), "os-bundle": hexsum("v0 os-bundle")}},
		{ID: "r1", Version: "1.0", Measurements: map[string]string{"policy": hexsum("v1 policy"), "agent": hexsum("v1 agent"), "os-bundle": hexsum("v1 os-bundle")}},
	}}
	return f
}

func hexsum(s string) string { return hex.EncodeToString(sum(s)) }

// quote makes a quote over pcrs with the given PCR values and extraData.
func (f *fixture) quote(pcrs []int, values map[int][]byte, extra []byte) (attest, sig []byte) {
	var bitmap [3]byte
	h := sha256.New()
	for _, p := range pcrs {
		bitmap[p/8] |= 1 << (p % 8)
	}
	for p := 0; p < 24; p++ {
		if bitmap[p/8]&(1<<(p%8)) != 0 {
			v, ok := values[p]
			if !ok {
				v = make([]byte, 32)
			}
			h.Write(v)
		}
	}
	a := tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: []byte{0, 0x0b, 1, 2}},
		ExtraData:       tpm2.TPM2BData{Buffer: extra},
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: bitmap[:]}}},
			PCRDigest: tpm2.TPM2BDigest{Buffer: h.Sum(nil)},
		}),
	}
	attest = tpm2.Marshal(&a)
	d := sha256.Sum256(attest)
	r, s, err := ecdsa.Sign(rand.Reader, f.ak, d[:])
	if err != nil {
		f.t.Fatal(err)
	}
	sig = tpm2.Marshal(&tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA,
		&tpm2.TPMSSignatureECC{Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()}, SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()}})})
	return attest, sig
}

func (f *fixture) evidence() (Challenge, Evidence) {
	logBytes, _ := f.log.Marshal()
	attest, sig := f.quote([]int{eventlog.DefaultPCR}, f.log.Replay(nil), QualifyingData(f.nonce, f.keys))
	return Challenge{Nonce: f.nonce, ExpiresAt: f.now.Add(time.Minute)},
		Evidence{QuoteAttest: attest, QuoteSignature: sig, EventLog: logBytes, Keys: f.keys}
}

func (f *fixture) verify(ch Challenge, ev Evidence) (*Result, *Failure) {
	v := &Verifier{Now: func() time.Time { return f.now }}
	return v.Verify(f.dev, ch, ev, f.policy)
}

func TestVerifyPasses(t *testing.T) {
	f := newFixture(t)
	ch, ev := f.evidence()
	res, fl := f.verify(ch, ev)
	if fl != nil {
		t.Fatal(fl)
	}
	if res.Release.ID != "r1" || res.Measurements["agent"] != hexsum("v1 agent") || res.Activated {
		t.Fatalf("result %+v", res)
	}
	// A release at or above the device's anti-rollback counter passes.
	for _, counter := range []uint64{0, 3} {
		f := newFixture(t)
		f.policy.Releases[1].SecurityVersion, f.dev.SecurityCounter = 3, counter
		ch, ev := f.evidence()
		if _, fl := f.verify(ch, ev); fl != nil {
			t.Fatalf("security version 3, counter %d: %v", counter, fl)
		}
	}
}

func TestVerifyFailures(t *testing.T) {
	other := newFixture(t)
	cases := []struct {
		name   string
		reason string
		change func(f *fixture, ch *Challenge, ev *Evidence)
	}{
		{"disabled", ReasonDeviceDisabled, func(f *fixture, ch *Challenge, ev *Evidence) { f.dev.Disabled = true }},
		{"software refused", ReasonRootOfTrustRefused, func(f *fixture, ch *Challenge, ev *Evidence) { f.policy.AllowSoftwareRootOfTrust = false }},
		{"nonce expired", ReasonNonceExpired, func(f *fixture, ch *Challenge, ev *Evidence) { f.now = ch.ExpiresAt }},
		{"activation missing", ReasonActivationFailed, func(f *fixture, ch *Challenge, ev *Evidence) {
			h := sha256.Sum256([]byte("secret-secret-secret-secret-1234"))
			ch.ActivationHash = h[:]
		}},
		{"activation wrong", ReasonActivationFailed, func(f *fixture, ch *Challenge, ev *Evidence) {
			h := sha256.Sum256([]byte("secret-secret-secret-secret-1234"))
			ch.ActivationHash = h[:]
			ev.ActivationSecret = []byte("secret-secret-secret-secret-1235")
		}},
		{"another device's nonce", ReasonQuoteNonce, func(f *fixture, ch *Challenge, ev *Evidence) { ch.Nonce = other.nonce }},
		{"keys swapped", ReasonQuoteNonce, func(f *fixture, ch *Challenge, ev *Evidence) { ev.Keys = other.keys }},
		{"no keys", ReasonKeysInvalid, func(f *fixture, ch *Challenge, ev *Evidence) { ev.Keys = nil }},
		{"bad key", ReasonKeysInvalid, func(f *fixture, ch *Challenge, ev *Evidence) {
			ev.Keys = []Key{{PublicKey: []byte("nope")}}
		}},
		{"no agent key", ReasonKeysInvalid, func(f *fixture, ch *Challenge, ev *Evidence) {
			ev.Keys = []Key{{Component: "app", PublicKey: f.keys[0].PublicKey}}
		}},
		{"duplicate component", ReasonKeysInvalid, func(f *fixture, ch *Challenge, ev *Evidence) {
			ev.Keys = []Key{f.keys[0], f.keys[0]}
		}},
		{"quote from another AK", ReasonQuoteSignature, func(f *fixture, ch *Challenge, ev *Evidence) {
			f.dev.AKPublic = other.dev.AKPublic
		}},
		{"tampered quote", ReasonQuoteSignature, func(f *fixture, ch *Challenge, ev *Evidence) { ev.QuoteAttest[len(ev.QuoteAttest)-1] ^= 1 }},
		{"tampered signature", ReasonQuoteSignature, func(f *fixture, ch *Challenge, ev *Evidence) { ev.QuoteSignature[len(ev.QuoteSignature)-1] ^= 1 }},
		{"truncated quote", ReasonQuoteMalformed, func(f *fixture, ch *Challenge, ev *Evidence) { ev.QuoteAttest = ev.QuoteAttest[:10] }},
		{"trailing bytes", ReasonQuoteMalformed, func(f *fixture, ch *Challenge, ev *Evidence) { ev.QuoteAttest = append(ev.QuoteAttest, 0) }},
		{"empty quote", ReasonQuoteMalformed, func(f *fixture, ch *Challenge, ev *Evidence) { ev.QuoteAttest = nil }},
		{"wrong PCRs", ReasonPCRSelection, func(f *fixture, ch *Challenge, ev *Evidence) {
			ev.QuoteAttest, ev.QuoteSignature = f.quote([]int{eventlog.DefaultPCR, 0}, f.log.Replay(nil), QualifyingData(f.nonce, f.keys))
		}},
		{"log does not replay", ReasonEventLogMismatch, func(f *fixture, ch *Challenge, ev *Evidence) {
			l := eventlog.New()
			_ = l.Append(eventlog.DefaultPCR, "policy", "", sum("v1 policy"))
			ev.EventLog, _ = l.Marshal()
		}},
		{"tampered log", ReasonEventLogMalformed, func(f *fixture, ch *Challenge, ev *Evidence) {
			ev.EventLog = []byte(strings.Replace(string(ev.EventLog), `"recnum":1`, `"recnum":5`, 1))
		}},
		{"log lies about a digest", ReasonEventLogMismatch, func(f *fixture, ch *Challenge, ev *Evidence) {
			ev.EventLog = []byte(strings.Replace(string(ev.EventLog), hexsum("v1 agent"), hexsum("v0 agent"), 1))
		}},
		{"oversized log", ReasonEventLogMalformed, func(f *fixture, ch *Challenge, ev *Evidence) {
			ev.EventLog = []byte(`{"version":1,"records":[],"x":"` + strings.Repeat("a", eventlog.MaxSize) + `"}`)
		}},
		{"measurement not in policy", ReasonMeasurementRefused, func(f *fixture, ch *Challenge, ev *Evidence) {
			f.log = eventlog.New()
			for _, m := range []string{"policy", "agent", "os-bundle"} {
				v := "v1 " + m
				if m == "agent" {
					v = "evil agent"
				}
				_ = f.log.Append(eventlog.DefaultPCR, m, "", sum(v))
			}
			*ch, *ev = f.evidence()
		}},
		{"mix and match releases", ReasonMeasurementRefused, func(f *fixture, ch *Challenge, ev *Evidence) {
			f.log = eventlog.New()
			_ = f.log.Append(eventlog.DefaultPCR, "policy", "", sum("v1 policy"))
			_ = f.log.Append(eventlog.DefaultPCR, "agent", "", sum("v0 agent"))
			_ = f.log.Append(eventlog.DefaultPCR, "os-bundle", "", sum("v1 os-bundle"))
			*ch, *ev = f.evidence()
		}},
		{"release below the device's counter", ReasonRolledBack, func(f *fixture, ch *Challenge, ev *Evidence) {
			f.policy.Releases[1].SecurityVersion, f.dev.SecurityCounter = 2, 3
		}},
		{"no releases", ReasonMeasurementRefused, func(f *fixture, ch *Challenge, ev *Evidence) { f.policy.Releases = nil }},
		{"missing measurement", ReasonMeasurementRefused, func(f *fixture, ch *Challenge, ev *Evidence) {
			f.log = eventlog.New()
			_ = f.log.Append(eventlog.DefaultPCR, "policy", "", sum("v1 policy"))
			*ch, *ev = f.evidence()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			ch, ev := f.evidence()
			c.change(f, &ch, &ev)
			res, fl := f.verify(ch, ev)
			if fl == nil {
				t.Fatalf("passed: %+v", res)
			}
			if fl.Reason != c.reason {
				t.Fatalf("reason %s (%s), want %s", fl.Reason, fl.Message, c.reason)
			}
			if fl.Message == "" || strings.Contains(fl.Message, "\n") {
				t.Fatalf("message %q", fl.Message)
			}
		})
	}
}

func TestActivationAnswerPasses(t *testing.T) {
	f := newFixture(t)
	ch, ev := f.evidence()
	secret := []byte("secret-secret-secret-secret-1234")
	h := sha256.Sum256(secret)
	ch.ActivationHash = h[:]
	ev.ActivationSecret = secret
	res, fl := f.verify(ch, ev)
	if fl != nil || !res.Activated {
		t.Fatalf("%v %+v", fl, res)
	}
}

func TestQualifyingDataBindsEverything(t *testing.T) {
	k1 := []Key{{Component: "", PublicKey: []byte{1}}, {Component: "app", PublicKey: []byte{2}}}
	k2 := []Key{{Component: "app", PublicKey: []byte{2}}, {Component: "", PublicKey: []byte{1}}}
	n := make([]byte, 32)
	if string(QualifyingData(n, k1)) != string(QualifyingData(n, k2)) {
		t.Fatal("order of keys matters")
	}
	for _, other := range [][]Key{
		{{Component: "", PublicKey: []byte{1}}},
		{{Component: "", PublicKey: []byte{1}}, {Component: "app", PublicKey: []byte{3}}},
		{{Component: "", PublicKey: []byte{1}}, {Component: "ap", PublicKey: []byte{'p', 2}}},
	} {
		if string(QualifyingData(n, k1)) == string(QualifyingData(n, other)) {
			t.Fatalf("keys %v collide", other)
		}
	}
	n2 := append([]byte{}, n...)
	n2[0] = 1
	if string(QualifyingData(n, k1)) == string(QualifyingData(n2, k1)) {
		t.Fatal("nonce not bound")
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	ch, ev := fx.evidence()
	f.Add(ev.QuoteAttest, ev.QuoteSignature, ev.EventLog)
	f.Fuzz(func(t *testing.T, attest, sig, log []byte) {
		v := &Verifier{Now: func() time.Time { return fx.now }}
		res, fl := v.Verify(fx.dev, ch, Evidence{QuoteAttest: attest, QuoteSignature: sig, EventLog: log, Keys: fx.keys}, fx.policy)
		if fl == nil && res == nil {
			t.Fatal("neither result nor failure")
		}
	})
}

// FuzzAttestationRequest decodes a hostile attestation request as the service does (strict
// JSON into v1.AttestationRequest) and verifies whatever decodes.
func FuzzAttestationRequest(f *testing.F) {
	fx := newFixture(f)
	ch, ev := fx.evidence()
	good, _ := json.Marshal(v1.AttestationRequest{DeviceID: fx.dev.ID, Nonce: ch.Nonce,
		Quote: v1.Quote{Attest: ev.QuoteAttest, Signature: ev.QuoteSignature}, EventLog: ev.EventLog,
		Keys: []v1.CertifyKey{{PublicKey: fx.keys[0].PublicKey}}})
	f.Add(good)
	f.Add([]byte(`{"device_id":"x","nonce":"AA==","quote":{"attest":"","signature":""},"event_log":{},"keys":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req v1.AttestationRequest
		if err := strictjson.Decode(b, &req); err != nil {
			return
		}
		keys := make([]Key, len(req.Keys))
		for i, k := range req.Keys {
			keys[i] = Key{Component: k.Component, PublicKey: k.PublicKey}
		}
		v := &Verifier{Now: func() time.Time { return fx.now }}
		res, fl := v.Verify(fx.dev, ch, Evidence{ActivationSecret: req.ActivationSecret, QuoteAttest: req.Quote.Attest,
			QuoteSignature: req.Quote.Signature, EventLog: req.EventLog, Keys: keys}, fx.policy)
		if (res == nil) == (fl == nil) {
			t.Fatal("want exactly one of result and failure")
		}
	})
}
