package tpmrot

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// fakeTPM answers each command with the next of its response codes.
type fakeTPM struct {
	codes []tpm2.TPMRC
	err   error
	sent  int
}

func response(rc tpm2.TPMRC) []byte {
	rsp := make([]byte, 10)
	binary.BigEndian.PutUint16(rsp, uint16(tpm2.TPMSTNoSessions))
	binary.BigEndian.PutUint32(rsp[2:], 10)
	binary.BigEndian.PutUint32(rsp[6:], uint32(rc))
	return rsp
}

func (f *fakeTPM) Send([]byte) ([]byte, error) {
	f.sent++
	if f.err != nil {
		return nil, f.err
	}
	rc := f.codes[0]
	if len(f.codes) > 1 {
		f.codes = f.codes[1:]
	}
	return response(rc), nil
}

func TestRetry(t *testing.T) {
	const success = tpm2.TPMRC(0)
	for _, c := range []struct {
		name      string
		codes     []tpm2.TPMRC
		wantSent  int
		wantFinal tpm2.TPMRC
	}{
		{"success", []tpm2.TPMRC{success}, 1, success},
		{"retry once", []tpm2.TPMRC{tpm2.TPMRCRetry, success}, 2, success},
		{"yielded then testing", []tpm2.TPMRC{tpm2.TPMRCYielded, tpm2.TPMRCTesting, tpm2.TPMRCTesting, success}, 4, success},
		{"other warnings are answers", []tpm2.TPMRC{tpm2.TPMRCLockout, success}, 1, tpm2.TPMRCLockout},
		{"errors are answers", []tpm2.TPMRC{tpm2.TPMRCValue, success}, 1, tpm2.TPMRCValue},
		{"gives up", []tpm2.TPMRC{tpm2.TPMRCRetry}, len(retryDelays) + 1, tpm2.TPMRCRetry},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeTPM{codes: c.codes}
			var slept []time.Duration
			r := &retryTPM{tpm: f, sleep: func(d time.Duration) { slept = append(slept, d) }, delays: retryDelays}
			rsp, err := r.Send([]byte("command"))
			if err != nil {
				t.Fatal(err)
			}
			if got := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:])); got != c.wantFinal {
				t.Errorf("final code %v; want %v", got, c.wantFinal)
			}
			if f.sent != c.wantSent {
				t.Errorf("sent %d times; want %d", f.sent, c.wantSent)
			}
			if len(slept) != f.sent-1 {
				t.Errorf("slept %d times for %d sends", len(slept), f.sent)
			}
			var total time.Duration
			for i, d := range slept {
				if d != retryDelays[i] {
					t.Errorf("delay %d = %v; want %v", i, d, retryDelays[i])
				}
				total += d
			}
			if total > 2*time.Second {
				t.Errorf("waited %v in all; the bound is 2s", total)
			}
		})
	}
}

func TestRetryPassesTransportErrors(t *testing.T) {
	boom := errors.New("boom")
	f := &fakeTPM{err: boom}
	r := &retryTPM{tpm: f, sleep: func(time.Duration) { t.Fatal("slept") }, delays: retryDelays}
	if _, err := r.Send(nil); !errors.Is(err, boom) || f.sent != 1 {
		t.Fatalf("err %v after %d sends", err, f.sent)
	}
}

func TestRetryToleratesShortResponses(t *testing.T) {
	short := &shortTPM{}
	r := &retryTPM{tpm: short, sleep: func(time.Duration) { t.Fatal("slept") }, delays: retryDelays}
	if rsp, err := r.Send(nil); err != nil || len(rsp) != 3 {
		t.Fatalf("%x %v", rsp, err)
	}
}

type shortTPM struct{}

func (shortTPM) Send([]byte) ([]byte, error) { return []byte{1, 2, 3}, nil }

// TestRetryThroughGoTPM: a command that go-tpm executes through Retry succeeds after retries.
func TestRetryThroughGoTPM(t *testing.T) {
	f := &fakeTPM{codes: []tpm2.TPMRC{tpm2.TPMRCRetry, tpm2.TPMRCTesting, 0}}
	r := &retryTPM{tpm: f, sleep: func(time.Duration) {}, delays: retryDelays}
	if _, err := (tpm2.FlushContext{FlushHandle: tpm2.TPMHandle(0x80000000)}).Execute(r); err != nil {
		t.Fatal(err)
	}
	if f.sent != 3 {
		t.Fatalf("sent %d", f.sent)
	}
	f = &fakeTPM{codes: []tpm2.TPMRC{tpm2.TPMRCRetry}}
	r = &retryTPM{tpm: f, sleep: func(time.Duration) {}, delays: retryDelays}
	if _, err := (tpm2.FlushContext{FlushHandle: tpm2.TPMHandle(0x80000000)}).Execute(r); !errors.Is(err, tpm2.TPMRCRetry) {
		t.Fatalf("after giving up: %v", err)
	}
}
