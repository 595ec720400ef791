package tpmrot

import (
	"encoding/binary"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// retryDelays is how long Retry waits before each new attempt: about 1.5 s in all, enough for a
// TPM's self-test or a busy emulator, short enough that a wedged TPM fails promptly.
var retryDelays = []time.Duration{
	2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond, 16 * time.Millisecond,
	32 * time.Millisecond, 64 * time.Millisecond, 128 * time.Millisecond, 256 * time.Millisecond,
	500 * time.Millisecond, 500 * time.Millisecond,
}

// Retry wraps a TPM transport so that commands the TPM answers with TPM_RC_RETRY,
// TPM_RC_YIELDED or TPM_RC_TESTING are sent again after a short, growing delay. These warnings
// mean the TPM did not run the command (it was busy, or still testing itself; swtpm answers its
// first signing command after a fresh start this way), so sending the identical bytes again is
// safe, sessions included. After the last attempt the warning is returned as the TPM's answer.
func Retry(t transport.TPM) transport.TPM {
	return &retryTPM{tpm: t, sleep: time.Sleep, delays: retryDelays}
}

type retryTPM struct {
	tpm    transport.TPM
	sleep  func(time.Duration)
	delays []time.Duration
}

func (r *retryTPM) Send(cmd []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		rsp, err := r.tpm.Send(cmd)
		if err != nil || attempt == len(r.delays) || !retryable(rsp) {
			return rsp, err
		}
		r.sleep(r.delays[attempt])
	}
}

// retryable reports whether a response's code is a warning that asks for the command again.
func retryable(rsp []byte) bool {
	if len(rsp) < 10 {
		return false
	}
	switch tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])) {
	case tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting:
		return true
	}
	return false
}
