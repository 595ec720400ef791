package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/eventlog"
)

// Reasons a verification fails. They are stable: devices report them, the service records
// them, and metrics count them.
const (
	ReasonDeviceUnknown       = "device_unknown"        // not claimed, or not by a tenant this endpoint serves
	ReasonDeviceDisabled      = "device_disabled"       // disabled by its tenant
	ReasonRootOfTrustRefused  = "root_of_trust_refused" // policy refuses the device's root of trust
	ReasonNonceUnknown        = "nonce_unknown"         // never issued, already used, or issued to another device
	ReasonNonceExpired        = "nonce_expired"
	ReasonActivationFailed    = "activation_failed" // the AK is not in the EK's TPM
	ReasonEKCertUntrusted     = "ek_certificate_untrusted"
	ReasonEKCertMissing       = "ek_certificate_missing"
	ReasonQuoteMalformed      = "quote_malformed"
	ReasonQuoteSignature      = "quote_signature_invalid" // not signed by the device's AK
	ReasonQuoteNonce          = "quote_nonce_mismatch"    // extraData does not bind this nonce and these keys
	ReasonPCRSelection        = "pcr_selection_invalid"
	ReasonEventLogMalformed   = "event_log_malformed"
	ReasonEventLogMismatch    = "event_log_mismatch" // the log does not replay to the quoted PCRs
	ReasonMeasurementRefused  = "measurement_not_allowed"
	ReasonKeysInvalid         = "keys_invalid"
	ReasonMeasurementsMissing = "measurements_missing"
	ReasonRolledBack          = "os_rolled_back" // the release's security version is below the device's counter
	// Firmware evidence (see firmware.go).
	ReasonPCRValuesMismatch    = "pcr_values_mismatch"          // the PCR values sent are not the quoted ones
	ReasonFirmwareLogMalformed = "firmware_event_log_malformed" // too large, or not a TCG log with SHA-256 digests
	ReasonFirmwareLogMismatch  = "firmware_event_log_mismatch"  // the firmware log does not replay to the quoted PCRs
	ReasonFirmwareRefused      = "firmware_not_allowed"         // the OS release's golden firmware values differ
)

// Failure is a verification that did not pass: a stable reason and a message for people.
type Failure struct {
	Reason  string
	Message string
}

func (f *Failure) Error() string { return "attestation failed: " + f.Reason + ": " + f.Message }

func fail(reason, format string, args ...any) *Failure {
	return &Failure{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Device is what the service knows of the device being verified (trusted).
type Device struct {
	ID            string
	RootOfTrust   string // enrollment.RootOfTrustTPM or RootOfTrustSoftware
	EKPublic      []byte // DER SPKI
	EKCertificate []byte // DER, nil if none
	AKPublic      []byte // TPMT_PUBLIC
	// AK is AKPublic already parsed, if the caller keeps it (it must come from AKPublic).
	AK       *enrollment.AKPublic
	Disabled bool
	// SecurityCounter is the highest anti-rollback counter the device has reported: it may
	// not run a release whose SecurityVersion is lower.
	SecurityCounter uint64
}

// Challenge is what the service issued for this attestation (trusted).
type Challenge struct {
	Nonce     []byte
	ExpiresAt time.Time
	// ActivationHash is the SHA-256 of the credential-activation secret, nil if the device's
	// AK is already known to share a TPM with its EK.
	ActivationHash []byte
}

// Evidence is what the device sent (hostile).
type Evidence struct {
	ActivationSecret []byte
	QuoteAttest      []byte // TPMS_ATTEST
	QuoteSignature   []byte // TPMT_SIGNATURE
	EventLog         []byte // eventlog JSON
	Keys             []Key
	// FirmwareEventLog is the UEFI firmware's event log (TCG binary format), nil if the device
	// sent none; with it the quote covers Policy.FirmwarePCRs too.
	FirmwareEventLog []byte
	// PCRValues are the values of every quoted PCR; required with FirmwareEventLog.
	PCRValues map[int][]byte
}

// Release is a set of golden measurements the tenant allows. The security monitor's
// measurements must equal the release's exactly. Firmware measurements (names starting with
// FirmwareMeasurementPrefix) the release lists must each be measured and equal; a release that
// lists none accepts any firmware whose log replays, and devices without firmware evidence.
type Release struct {
	ID           string
	Version      string
	Measurements map[string]string // name -> lowercase hex SHA-256
	// SecurityVersion is the release's security version; a device whose SecurityCounter is
	// higher may not run it.
	SecurityVersion uint64
}

// Policy is the tenant's and service's rules for this verification (trusted).
type Policy struct {
	AllowSoftwareRootOfTrust bool
	// PCRs the quote must cover exactly (default: eventlog.DefaultPCR).
	PCRs []int
	// FirmwarePCRs the quote must also cover when the device sends a firmware event log
	// (default: FirmwarePCRs). PCRs in both sets count as the monitor's.
	FirmwarePCRs []int
	// Releases allowed for this device; the measured set must equal one release's set.
	Releases []Release
	// EKRoots verifies EK certificates; nil means EK certificates are not checked.
	EKRoots *x509.CertPool
	// RequireEKCertificate refuses TPM devices without an EK certificate.
	RequireEKCertificate bool
}

// Result is a passed verification.
type Result struct {
	Release      Release
	Measurements map[string]string
	// Firmware is what the firmware event log proved, nil if the device sent none.
	Firmware *Firmware
	// EKCertificateVerified says the EK certificate chained to Policy.EKRoots.
	EKCertificateVerified bool
	// Activated says this verification proved, by credential activation, that AK and EK
	// share a TPM (the caller records it).
	Activated bool
	Keys      []Key
}

// Verifier checks evidence. The zero value uses time.Now.
type Verifier struct {
	Now func() time.Time
}

// Verify runs every check, in order: device state and policy, nonce freshness, credential
// activation, EK certificate, quote signature and nonce binding, PCR selection, event log
// replay, and measurements. It returns the first failure.
func (v *Verifier) Verify(dev Device, ch Challenge, ev Evidence, pol Policy) (*Result, *Failure) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if dev.Disabled {
		return nil, fail(ReasonDeviceDisabled, "device %s is disabled by its tenant", dev.ID)
	}
	if dev.RootOfTrust == enrollment.RootOfTrustSoftware && !pol.AllowSoftwareRootOfTrust {
		return nil, fail(ReasonRootOfTrustRefused, "device %s uses the development-only software root of trust, which policy refuses", dev.ID)
	}
	if !now().Before(ch.ExpiresAt) {
		return nil, fail(ReasonNonceExpired, "the nonce expired at %s", ch.ExpiresAt.UTC().Format(time.RFC3339))
	}
	res := &Result{}
	if ch.ActivationHash != nil {
		got := sha256.Sum256(ev.ActivationSecret)
		if len(ev.ActivationSecret) != ActivationSecretSize || subtle.ConstantTimeCompare(got[:], ch.ActivationHash) != 1 {
			return nil, fail(ReasonActivationFailed, "the credential-activation answer is wrong: the attestation key is not in the TPM that holds the endorsement key")
		}
		res.Activated = true
	}
	if f := checkEKCertificate(dev, pol, res); f != nil {
		return nil, f
	}
	keys, f := checkKeys(ev.Keys)
	if f != nil {
		return nil, f
	}
	res.Keys = keys
	quote, f := checkQuote(dev, ch, ev, keys)
	if f != nil {
		return nil, f
	}
	want := pol.PCRs
	if len(want) == 0 {
		want = []int{eventlog.DefaultPCR}
	}
	selected, f := quotedPCRs(quote)
	if f != nil {
		return nil, f
	}
	withFirmware := len(ev.FirmwareEventLog) > 0
	var firmwareValues map[string]string
	var firmwarePCRs []int
	if withFirmware {
		fp := pol.FirmwarePCRs
		if len(fp) == 0 {
			fp = FirmwarePCRs
		}
		for _, p := range fp {
			if !contains(want, p) {
				firmwarePCRs = append(firmwarePCRs, p)
			}
		}
		if all := union(want, firmwarePCRs); !sortedEqual(selected, all) {
			return nil, fail(ReasonPCRSelection, "the quote covers PCRs %v; with a firmware event log policy requires exactly %v (SHA-256)", selected, all)
		}
	} else if !sortedEqual(selected, want) {
		return nil, fail(ReasonPCRSelection, "the quote covers PCRs %v; policy requires exactly %v (SHA-256)", selected, want)
	}
	log, err := eventlog.Parse(ev.EventLog)
	if err != nil {
		return nil, fail(ReasonEventLogMalformed, "%v", err)
	}
	for _, p := range log.PCRs() {
		if !contains(want, p) {
			return nil, fail(ReasonEventLogMismatch, "the event log extends PCR %d, which is not the security monitor's", p)
		}
	}
	for name := range log.Measurements() {
		if strings.HasPrefix(name, FirmwareMeasurementPrefix) {
			return nil, fail(ReasonEventLogMalformed, "the event log names a measurement %q; the prefix %q is the firmware's", name, FirmwareMeasurementPrefix)
		}
	}
	if withFirmware {
		fw, start, f := firmwareEvidence(ev, quote, selected, want, firmwarePCRs)
		if f != nil {
			return nil, f
		}
		firmwareValues = map[string]string{}
		for _, p := range firmwarePCRs {
			firmwareValues[FirmwarePCRMeasurement(p)] = hex.EncodeToString(ev.PCRValues[p])
		}
		values := log.Replay(start)
		for _, p := range want {
			if !bytes.Equal(values[p], ev.PCRValues[p]) {
				return nil, fail(ReasonEventLogMismatch, "the event log, after the firmware's events, does not replay to the quoted value of PCR %d", p)
			}
		}
		res.Firmware = fw
	} else {
		values := log.Replay(nil)
		h := sha256.New()
		for _, p := range selected { // ascending, as TPM2_Quote digests them
			v, ok := values[p]
			if !ok {
				v = make([]byte, sha256.Size)
			}
			h.Write(v)
		}
		if !bytes.Equal(h.Sum(nil), quote.PCRDigest.Buffer) {
			return nil, fail(ReasonEventLogMismatch, "the event log does not replay to the quoted PCR values")
		}
	}
	res.Measurements = log.Measurements()
	for n, v := range firmwareValues {
		res.Measurements[n] = v
	}
	rel, f := matchRelease(res.Measurements, pol.Releases)
	if f != nil {
		return nil, f
	}
	if rel.SecurityVersion < dev.SecurityCounter {
		return nil, fail(ReasonRolledBack, "the device runs OS release %s, security version %d, but it had committed security version %d: "+
			"its OS was put back to an older release; only a release with security version %[3]d or higher attests",
			rel.Version, rel.SecurityVersion, dev.SecurityCounter)
	}
	res.Release = rel
	return res, nil
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func checkEKCertificate(dev Device, pol Policy, res *Result) *Failure {
	if dev.RootOfTrust != enrollment.RootOfTrustTPM {
		return nil
	}
	if len(dev.EKCertificate) == 0 {
		if pol.RequireEKCertificate {
			return fail(ReasonEKCertMissing, "device %s has no EK certificate, which policy requires", dev.ID)
		}
		return nil
	}
	if pol.EKRoots == nil {
		return nil
	}
	cert, err := x509.ParseCertificate(dev.EKCertificate)
	if err != nil {
		return fail(ReasonEKCertUntrusted, "EK certificate: %v", err)
	}
	// EK certificates carry a critical subject alternative name holding TPM attributes
	// (manufacturer, model, version) that crypto/x509 does not parse. It describes the TPM, not
	// the chain, so it alone may be set aside; any other unhandled critical extension fails.
	var rest []asn1.ObjectIdentifier
	for _, oid := range cert.UnhandledCriticalExtensions {
		if !oid.Equal(oidSubjectAltName) {
			rest = append(rest, oid)
		}
	}
	cert.UnhandledCriticalExtensions = rest
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pol.EKRoots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fail(ReasonEKCertUntrusted, "the EK certificate does not chain to a trusted TPM vendor: %v", err)
	}
	res.EKCertificateVerified = true
	return nil
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

func checkKeys(keys []Key) ([]Key, *Failure) {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return nil, fail(ReasonKeysInvalid, "want 1 to %d keys to certify, got %d", MaxKeys, len(keys))
	}
	seen := map[string]bool{}
	agent := false
	for i, k := range keys {
		if len(k.Component) > MaxComponentLen {
			return nil, fail(ReasonKeysInvalid, "key %d: component name longer than %d", i, MaxComponentLen)
		}
		if seen[k.Component] {
			return nil, fail(ReasonKeysInvalid, "key %d: component %q appears twice", i, k.Component)
		}
		seen[k.Component] = true
		agent = agent || k.Component == ""
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, fail(ReasonKeysInvalid, "key %d: %v", i, err)
		}
		if ec, ok := pub.(*ecdsa.PublicKey); !ok || ec.Curve.Params().Name != "P-256" {
			return nil, fail(ReasonKeysInvalid, "key %d: want an ECDSA P-256 key", i)
		}
	}
	if !agent {
		return nil, fail(ReasonKeysInvalid, "no key for the agent itself (component \"\")")
	}
	return keys, nil
}

// checkQuote parses the quote, checks it is a TPM-generated quote signed by the device's AK,
// and that its extraData binds this challenge's nonce and the keys.
func checkQuote(dev Device, ch Challenge, ev Evidence, keys []Key) (*tpm2.TPMSQuoteInfo, *Failure) {
	if len(ev.QuoteAttest) == 0 || len(ev.QuoteAttest) > MaxQuoteSize || len(ev.QuoteSignature) == 0 || len(ev.QuoteSignature) > MaxQuoteSize {
		return nil, fail(ReasonQuoteMalformed, "quote missing or larger than %d bytes", MaxQuoteSize)
	}
	attest, f := parseQuoteAttest(ev.QuoteAttest)
	if f != nil {
		return nil, f
	}
	sig, err := parseQuoteSignature(ev.QuoteSignature)
	if errors.Is(err, errSignatureScheme) {
		return nil, fail(ReasonQuoteSignature, "the quote is not signed by the device's attestation key: %v", err)
	}
	if err != nil {
		return nil, fail(ReasonQuoteMalformed, "TPMT_SIGNATURE: %v", err)
	}
	ak := dev.AK
	if ak == nil {
		var err error
		if ak, err = enrollment.ParseAKPublic(dev.AKPublic); err != nil {
			return nil, fail(ReasonQuoteSignature, "the device's stored AK is unusable: %v", err)
		}
	}
	digest := sha256.Sum256(ev.QuoteAttest)
	if err := verifySignature(ak.Key, digest[:], sig); err != nil {
		return nil, fail(ReasonQuoteSignature, "the quote is not signed by the device's attestation key: %v", err)
	}
	// attest.QualifiedSigner is the AK's qualified name, which depends on its parent and so
	// is not known here; the signature above already binds the quote to the AK.
	want := QualifyingData(ch.Nonce, keys)
	if subtle.ConstantTimeCompare(attest.extraData, want) != 1 {
		return nil, fail(ReasonQuoteNonce, "the quote does not bind this nonce and these keys")
	}
	return &attest.quote, nil
}

func verifySignature(key any, digest []byte, sig *quoteSignature) error {
	if sig.hash != tpm2.TPMAlgSHA256 {
		return fmt.Errorf("signature hash %v, want SHA-256", sig.hash)
	}
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if sig.alg != tpm2.TPMAlgECDSA {
			return fmt.Errorf("an RSASSA signature from an ECDSA key")
		}
		r, s := new(big.Int).SetBytes(sig.r), new(big.Int).SetBytes(sig.s)
		if !ecdsa.Verify(k, digest, r, s) {
			return fmt.Errorf("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		if sig.alg != tpm2.TPMAlgRSASSA {
			return fmt.Errorf("an ECDSA signature from an RSA key")
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig.rsa)
	}
	return fmt.Errorf("unsupported AK type %T", key)
}

func quotedPCRs(q *tpm2.TPMSQuoteInfo) ([]int, *Failure) {
	if len(q.PCRSelect.PCRSelections) != 1 || q.PCRSelect.PCRSelections[0].Hash != tpm2.TPMAlgSHA256 {
		return nil, fail(ReasonPCRSelection, "the quote must select exactly one bank, SHA-256")
	}
	bitmap := q.PCRSelect.PCRSelections[0].PCRSelect
	if len(bitmap) > 4 {
		return nil, fail(ReasonPCRSelection, "PCR selection bitmap of %d bytes", len(bitmap))
	}
	var out []int
	for i, b := range bitmap {
		for bit := 0; bit < 8; bit++ {
			if b&(1<<bit) != 0 {
				out = append(out, i*8+bit)
			}
		}
	}
	if len(q.PCRDigest.Buffer) != sha256.Size {
		return nil, fail(ReasonQuoteMalformed, "PCR digest is %d bytes", len(q.PCRDigest.Buffer))
	}
	return out, nil
}

// matchRelease finds a release whose monitor measurements are exactly the measured ones and
// whose firmware measurements, if it lists any, are all measured and equal.
func matchRelease(measured map[string]string, releases []Release) (Release, *Failure) {
	monitor, firmware := splitMeasurements(measured)
	if len(monitor) == 0 {
		return Release{}, fail(ReasonMeasurementsMissing, "the event log holds no measurements")
	}
	best, bestMatches := "", -1
	var firmwareMisses []Release // releases whose monitor measurements match, but not their firmware
	for _, r := range releases {
		rm, rf := splitMeasurements(r.Measurements)
		matches := 0
		for name, d := range monitor {
			if rm[name] == d {
				matches++
			}
		}
		if matches == len(monitor) && len(rm) == len(monitor) {
			if firmwareDiffers(rf, firmware) == nil {
				return r, nil
			}
			firmwareMisses = append(firmwareMisses, r)
			continue
		}
		if matches > bestMatches {
			best, bestMatches = r.Version, matches
		}
	}
	names := make([]string, 0, len(monitor))
	for n := range monitor {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(firmwareMisses) > 0 {
		var parts []string
		for _, r := range firmwareMisses {
			_, rf := splitMeasurements(r.Measurements)
			parts = append(parts, fmt.Sprintf("%s differs in %v", r.Version, firmwareDiffers(rf, firmware)))
		}
		return Release{}, fail(ReasonFirmwareRefused, "the firmware measurements match no release whose software matches: %s; measured %s",
			strings.Join(parts, "; "), describeFirmware(firmware))
	}
	if len(releases) == 0 {
		return Release{}, fail(ReasonMeasurementRefused, "no OS release is registered for this tenant; measured %s", describe(monitor, names))
	}
	var differ []string
	for _, r := range releases {
		if r.Version != best {
			continue
		}
		rm, _ := splitMeasurements(r.Measurements)
		for _, n := range names {
			if rm[n] != monitor[n] {
				differ = append(differ, n)
			}
		}
		for n := range rm {
			if _, ok := monitor[n]; !ok {
				differ = append(differ, n+" (not measured)")
			}
		}
	}
	sort.Strings(differ)
	return Release{}, fail(ReasonMeasurementRefused, "the measurements match no allowed release; closest is %s, which differs in %v; measured %s",
		best, differ, describe(monitor, names))
}

// firmwareDiffers lists the golden firmware values that the measured ones do not equal.
func firmwareDiffers(golden, measured map[string]string) []string {
	var out []string
	for n, d := range golden {
		m, ok := measured[n]
		switch {
		case !ok:
			out = append(out, n+" (not measured)")
		case m != d:
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func describeFirmware(m map[string]string) string {
	if len(m) == 0 {
		return "no firmware evidence"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(names[i], FirmwareMeasurementPrefix+"pcr"))
		b, _ := strconv.Atoi(strings.TrimPrefix(names[j], FirmwareMeasurementPrefix+"pcr"))
		return a < b || a == b && names[i] < names[j]
	})
	return describe(m, names)
}

func describe(m map[string]string, names []string) string {
	var b bytes.Buffer
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		d := m[n]
		if len(d) > 12 {
			d = d[:12]
		}
		fmt.Fprintf(&b, "%s=%s", n, d)
	}
	return b.String()
}
