package tpmrot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
)

// MaxFirmwareEventLog bounds the firmware event log FirmwareEventLog reads.
const MaxFirmwareEventLog = 1 << 20

// securityFS is where the kernel publishes each TPM's firmware event log.
const securityFS = "/sys/kernel/security"

// tpmDevicePattern is compiled on first use, not at every start of the agent's processes.
var tpmDevicePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^tpm(?:rm)?([0-9]+)$`) })

// firmwareLogPath is the kernel's copy of the firmware event log for the TPM device at
// device (/dev/tpmrm0 and /dev/tpm0 both give tpm0's), or "" for a path that names no kernel TPM.
func firmwareLogPath(device string) string {
	m := tpmDevicePattern().FindStringSubmatch(filepath.Base(device))
	if m == nil {
		return ""
	}
	return filepath.Join(securityFS, "tpm"+m[1], "binary_bios_measurements")
}

// FirmwareEventLog returns the UEFI firmware's measured-boot event log (TCG binary format) as
// the kernel kept it, for a root of trust opened on a kernel TPM device ("tpm" backend). It
// returns nil and no error when there is none: a swtpm or simulator root of trust, or a
// machine whose firmware did no measured boot (or whose securityfs is not mounted). Reading it
// needs root: the kernel makes it readable by root alone.
func (r *TPM) FirmwareEventLog(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.firmwareLog == "" {
		return nil, nil
	}
	f, err := os.Open(r.firmwareLog)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the firmware event log: %w", err)
	}
	defer f.Close()
	// securityfs reports a size of 0: read to the end, bounded.
	b, err := io.ReadAll(io.LimitReader(f, MaxFirmwareEventLog+1))
	if err != nil {
		return nil, fmt.Errorf("reading the firmware event log %s: %w", r.firmwareLog, err)
	}
	if len(b) > MaxFirmwareEventLog {
		return nil, fmt.Errorf("the firmware event log %s is larger than %d bytes", r.firmwareLog, MaxFirmwareEventLog)
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}
