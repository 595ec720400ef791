package attest

// Firmware measured boot as evidence. A device whose root of trust is a kernel TPM sends the
// UEFI firmware's event log (TCG PC Client binary format) and quotes the firmware PCRs together
// with the security monitor's PCR. The verifier never trusts the log: it checks that the PCR
// values the device sent hash to the quote's signed PCR digest, replays the log against those
// values with go-attestation, and records, for every firmware PCR, the value the quote proved.
// See docs/ATTESTATION.md for the PCR allocation and the release policy.

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	gattest "github.com/google/go-attestation/attest"
	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
)

// MaxFirmwareEventLog bounds the firmware event log a device may send. Logs of real machines
// are 4 to 100 KiB; the limit leaves room for many boot entries and option ROMs while keeping
// the attestation request under the service's 2 MiB body limit together with the monitor's log.
const MaxFirmwareEventLog = 512 << 10

// FirmwarePCRs are the PCRs a quote covers, besides the monitor's, when a device sends a firmware
// event log: 0–7 (firmware, option ROMs, boot configuration, Secure Boot policy) and 8, 9, 11,
// 12 and 13 (boot loader, kernel command line and initrd, UKI sections, stub parameters and
// extensions), which UEFI boot loaders and systemd-stub extend through the firmware, so the log
// records them. PCR 10 (IMA) is left out: its log is the kernel's, not the firmware's.
var FirmwarePCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13}

// FirmwareMeasurementPrefix starts the name of every measurement taken from firmware evidence:
// "firmware-pcr4" is PCR 4's value as the quote proved it. The security monitor's own
// measurements may not use the prefix.
const FirmwareMeasurementPrefix = "firmware-"

// FirmwarePCRMeasurement is the measurement name of a firmware PCR's value.
func FirmwarePCRMeasurement(pcr int) string {
	return FirmwareMeasurementPrefix + "pcr" + strconv.Itoa(pcr)
}

// Firmware is what the verifier learnt from a firmware event log that replayed to quoted PCRs.
// The quoted values of the firmware PCRs themselves are in Result.Measurements (firmware-pcrN).
type Firmware struct {
	// SecureBoot is "enabled" or "disabled" as the verified PCR 7 events record it, or
	// "unknown" when go-attestation cannot tell (SecureBootError says why).
	SecureBoot      string `json:"secure_boot"`
	SecureBootError string `json:"secure_boot_error,omitempty"`
	// BootApplications are the Authenticode SHA-256 digests of the EFI applications the
	// firmware ran (verified PCR 4 EV_EFI_BOOT_SERVICES_APPLICATION events), in order: for a
	// UKI, the UKI and then the kernel it carries.
	BootApplications []string `json:"boot_applications,omitempty"`
	// Events is the number of log events that replayed to a quoted PCR.
	Events int `json:"events"`
}

// Secure Boot states in Firmware.SecureBoot.
const (
	SecureBootEnabled  = "enabled"
	SecureBootDisabled = "disabled"
	SecureBootUnknown  = "unknown"
)

const (
	evNoAction                   = 0x00000003
	evEFIBootServicesApplication = 0x80000003
)

// firmwareEvidence checks the firmware half of an attestation: the PCR values against the
// quote's digest, then the firmware log against those values. It returns what it learnt, and
// the values every monitor PCR held before the monitor's first extend (the log's own events
// on those PCRs, as shim's on PCR 14, replayed from zero), from which the monitor's log must
// replay to the quoted values.
func firmwareEvidence(ev Evidence, quote *tpm2.TPMSQuoteInfo, selected, monitorPCRs, firmwarePCRs []int) (*Firmware, map[int][]byte, *Failure) {
	if len(ev.FirmwareEventLog) > MaxFirmwareEventLog {
		return nil, nil, fail(ReasonFirmwareLogMalformed, "the firmware event log is %d bytes; the limit is %d", len(ev.FirmwareEventLog), MaxFirmwareEventLog)
	}
	values, f := checkPCRValues(ev.PCRValues, quote, selected)
	if f != nil {
		return nil, nil, f
	}
	el, err := parseFirmwareLog(ev.FirmwareEventLog)
	if err != nil {
		return nil, nil, fail(ReasonFirmwareLogMalformed, "%v", err)
	}
	var pcrs []gattest.PCR
	for _, p := range firmwarePCRs {
		pcrs = append(pcrs, gattest.PCR{Index: p, Digest: values[p], DigestAlg: crypto.SHA256})
	}
	events, err := verifyFirmwareLog(el, pcrs)
	if err != nil {
		var re gattest.ReplayError
		if errors.As(err, &re) {
			return nil, nil, fail(ReasonFirmwareLogMismatch, "the firmware event log does not replay to the quoted values of PCRs %v", re.InvalidPCRs)
		}
		return nil, nil, fail(ReasonFirmwareLogMismatch, "the firmware event log does not replay to the quoted PCRs: %v", err)
	}
	extended := map[int]bool{}
	for _, e := range events {
		extended[e.Index] = true
	}
	zero := make([]byte, sha256.Size)
	for _, p := range firmwarePCRs {
		// go-attestation accepts a PCR with no events whatever its value; here a PCR no event
		// explains must still be in its reset state.
		if !extended[p] && !bytes.Equal(values[p], zero) {
			return nil, nil, fail(ReasonFirmwareLogMismatch, "PCR %d holds a value that no event of the firmware event log accounts for", p)
		}
	}
	start, f := monitorStart(el, monitorPCRs)
	if f != nil {
		return nil, nil, f
	}
	fw := &Firmware{Events: len(events), SecureBoot: SecureBootUnknown}
	if sb, err := parseSecureboot(events); err != nil {
		fw.SecureBootError = truncate(err.Error(), 200)
	} else if sb.Enabled {
		fw.SecureBoot = SecureBootEnabled
	} else {
		fw.SecureBoot = SecureBootDisabled
	}
	for _, e := range events {
		if e.Index == 4 && e.Type == evEFIBootServicesApplication {
			fw.BootApplications = append(fw.BootApplications, hex.EncodeToString(e.Digest))
		}
	}
	// The monitor's PCRs must replay from start to the values the device sent, which the
	// caller checks; return them with start so it can.
	for _, p := range monitorPCRs {
		if _, ok := start[p]; !ok {
			start[p] = zero
		}
	}
	return fw, start, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// checkPCRValues checks that values holds exactly the selected PCRs, 32 bytes each, and that
// they hash to the quote's PCR digest, so they are as trustworthy as the quote.
func checkPCRValues(values map[int][]byte, quote *tpm2.TPMSQuoteInfo, selected []int) (map[int][]byte, *Failure) {
	if len(values) != len(selected) {
		return nil, fail(ReasonPCRValuesMismatch, "%d PCR values for the %d quoted PCRs %v", len(values), len(selected), selected)
	}
	for _, p := range selected {
		v, ok := values[p]
		if !ok {
			return nil, fail(ReasonPCRValuesMismatch, "no value for quoted PCR %d", p)
		}
		if len(v) != sha256.Size {
			return nil, fail(ReasonPCRValuesMismatch, "the value of PCR %d is %d bytes, not %d", p, len(v), sha256.Size)
		}
	}
	if !bytes.Equal(rot.PCRDigest(selected, values), quote.PCRDigest.Buffer) {
		return nil, fail(ReasonPCRValuesMismatch, "the PCR values do not hash to the quoted PCR digest")
	}
	return values, nil
}

// ParseFirmwareEventLog parses a firmware event log as the verifier does, without replaying it:
// the bounds and form checks alone. The log remains untrusted.
func ParseFirmwareEventLog(raw []byte) (*gattest.EventLog, error) {
	if len(raw) > MaxFirmwareEventLog {
		return nil, fmt.Errorf("the firmware event log is %d bytes; the limit is %d", len(raw), MaxFirmwareEventLog)
	}
	return parseFirmwareLog(raw)
}

func parseFirmwareLog(raw []byte) (el *gattest.EventLog, err error) {
	if len(raw) == 0 {
		return nil, errors.New("the firmware event log is empty")
	}
	defer func() {
		if r := recover(); r != nil {
			el, err = nil, fmt.Errorf("firmware event log: malformed: %v", r)
		}
	}()
	el, err = gattest.ParseEventLog(raw)
	if err != nil {
		return nil, fmt.Errorf("firmware event log: %w", err)
	}
	for _, a := range el.Algs {
		if a == gattest.HashSHA256 {
			return el, nil
		}
	}
	return nil, errors.New("the firmware event log has no SHA-256 digests (a TPM 1.2-format or SHA-1-only log)")
}

// verifyFirmwareLog is EventLog.Verify, turning a panic on hostile input into an error.
func verifyFirmwareLog(el *gattest.EventLog, pcrs []gattest.PCR) (events []gattest.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			events, err = nil, fmt.Errorf("malformed: %v", r)
		}
	}()
	return el.Verify(pcrs)
}

func parseSecureboot(events []gattest.Event) (sb *gattest.SecurebootState, err error) {
	defer func() {
		if r := recover(); r != nil {
			sb, err = nil, fmt.Errorf("malformed: %v", r)
		}
	}()
	return gattest.ParseSecurebootState(events)
}

// monitorStart replays the firmware log's events on the monitor's PCRs (shim records its PCR
// 14 extends there) from zero. Nothing here is trusted yet: the monitor's log must then replay
// from these values to the quoted ones.
func monitorStart(el *gattest.EventLog, monitorPCRs []int) (map[int][]byte, *Failure) {
	start := map[int][]byte{}
	for _, e := range el.Events(gattest.HashSHA256) {
		if !contains(monitorPCRs, e.Index) || e.Type == evNoAction {
			continue
		}
		if len(e.Digest) != sha256.Size {
			return nil, fail(ReasonFirmwareLogMalformed, "a firmware event on PCR %d has no SHA-256 digest", e.Index)
		}
		cur, ok := start[e.Index]
		if !ok {
			cur = make([]byte, sha256.Size)
		}
		h := sha256.New()
		h.Write(cur)
		h.Write(e.Digest)
		start[e.Index] = h.Sum(nil)
	}
	return start, nil
}

// union returns the sorted union of two PCR sets.
func union(a, b []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, s := range [][]int{a, b} {
		for _, p := range s {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Ints(out)
	return out
}

// splitMeasurements separates the monitor's measurements from the firmware's.
func splitMeasurements(m map[string]string) (monitor, firmware map[string]string) {
	monitor, firmware = map[string]string{}, map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, FirmwareMeasurementPrefix) {
			firmware[k] = v
		} else {
			monitor[k] = v
		}
	}
	return monitor, firmware
}
