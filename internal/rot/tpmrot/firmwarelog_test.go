package tpmrot

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestFirmwareLogPath(t *testing.T) {
	for dev, want := range map[string]string{
		"/dev/tpmrm0":     "/sys/kernel/security/tpm0/binary_bios_measurements",
		"/dev/tpm0":       "/sys/kernel/security/tpm0/binary_bios_measurements",
		"/dev/tpmrm1":     "/sys/kernel/security/tpm1/binary_bios_measurements",
		"/tmp/tpm-socket": "",
		"/dev/vtpmx":      "",
	} {
		if got := firmwareLogPath(dev); got != want {
			t.Errorf("firmwareLogPath(%q) = %q, want %q", dev, got, want)
		}
	}
}

func TestFirmwareEventLogRead(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "binary_bios_measurements")
	r := &TPM{firmwareLog: log}
	if b, err := r.FirmwareEventLog(context.Background()); b != nil || err != nil {
		t.Fatalf("absent log: %v, %v", b, err)
	}
	if err := os.WriteFile(log, []byte("log"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := r.FirmwareEventLog(context.Background()); string(b) != "log" || err != nil {
		t.Fatalf("got %q, %v", b, err)
	}
	if err := os.WriteFile(log, make([]byte, MaxFirmwareEventLog+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.FirmwareEventLog(context.Background()); err == nil {
		t.Fatal("an oversized log was read")
	}
	if b, err := (&TPM{}).FirmwareEventLog(context.Background()); b != nil || err != nil {
		t.Fatalf("no kernel TPM: %v, %v", b, err)
	}
}
