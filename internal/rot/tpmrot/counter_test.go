//go:build cgo

package tpmrot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/rampart-iot/rampart/internal/rot"
)

// The tests below drive partial and tampered states with raw TPM commands, sent under the
// root's mutex, independently of counter.go's helpers.

func raw(t *testing.T, r *TPM, f func(tpm transport.TPM)) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.tpm)
}

func rawPublic(t *testing.T, tpm transport.TPM, h tpm2.TPMHandle) (*tpm2.TPMSNVPublic, tpm2.TPM2BName) {
	t.Helper()
	rsp, err := tpm2.NVReadPublic{NVIndex: h}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_ReadPublic %#x: %v", uint32(h), err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	return pub, rsp.NVName
}

func rawDefine(t *testing.T, tpm transport.TPM, pub tpm2.TPMSNVPublic) {
	t.Helper()
	if _, err := (tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(pub),
	}).Execute(tpm); err != nil {
		t.Fatalf("NV_DefineSpace %#x: %v", uint32(pub.NVIndex), err)
	}
}

func rawUndefine(t *testing.T, tpm transport.TPM, h tpm2.TPMHandle) {
	t.Helper()
	_, name := rawPublic(t, tpm, h)
	if _, err := (tpm2.NVUndefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: h, Name: name},
	}).Execute(tpm); err != nil {
		t.Fatalf("NV_UndefineSpace %#x: %v", uint32(h), err)
	}
}

func rawIncrement(t *testing.T, tpm transport.TPM) {
	t.Helper()
	_, name := rawPublic(t, tpm, CounterIndex)
	if _, err := (tpm2.NVIncrement{
		AuthHandle: tpm2.AuthHandle{Handle: CounterIndex, Name: name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: CounterIndex, Name: name},
	}).Execute(tpm); err != nil {
		t.Fatalf("NV_Increment: %v", err)
	}
}

func rawWriteBase(tpm transport.TPM, v uint64) error {
	rsp, err := tpm2.NVReadPublic{NVIndex: BaseIndex}.Execute(tpm)
	if err != nil {
		return err
	}
	_, err = tpm2.NVWrite{
		AuthHandle: tpm2.AuthHandle{Handle: BaseIndex, Name: rsp.NVName, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: BaseIndex, Name: rsp.NVName},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: binary.BigEndian.AppendUint64(nil, v)},
	}.Execute(tpm)
	return err
}

func rawLockBase(t *testing.T, tpm transport.TPM) {
	t.Helper()
	_, name := rawPublic(t, tpm, BaseIndex)
	if _, err := (tpm2.NVWriteLock{
		AuthHandle: tpm2.AuthHandle{Handle: BaseIndex, Name: name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: BaseIndex, Name: name},
	}).Execute(tpm); err != nil {
		t.Fatalf("NV_WriteLock: %v", err)
	}
}

func rawRead(t *testing.T, tpm transport.TPM, h tpm2.TPMHandle) uint64 {
	t.Helper()
	_, name := rawPublic(t, tpm, h)
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: h, Name: name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: h, Name: name},
		Size:       8,
	}.Execute(tpm)
	if err != nil {
		t.Fatalf("NV_Read %#x: %v", uint32(h), err)
	}
	return binary.BigEndian.Uint64(rsp.Data.Buffer)
}

// The indices as the design defines them, written out again here so that a change to
// counter.go's attributes fails these tests.
var (
	wantCounterPublic = tpm2.TPMSNVPublic{
		NVIndex: 0x01300001, NameAlg: tpm2.TPMAlgSHA256, DataSize: 8,
		Attributes: tpm2.TPMANV{NT: tpm2.TPMNTCounter, AuthWrite: true, AuthRead: true, OwnerRead: true, NoDA: true},
	}
	wantBasePublic = tpm2.TPMSNVPublic{
		NVIndex: 0x01300002, NameAlg: tpm2.TPMAlgSHA256, DataSize: 8,
		Attributes: tpm2.TPMANV{NT: tpm2.TPMNTOrdinary, AuthWrite: true, AuthRead: true, OwnerRead: true, NoDA: true, WriteDefine: true, WriteAll: true},
	}
)

// checkSettled checks that both indices are complete and that the counter reads
// counter − base, computed from raw reads.
func checkSettled(t *testing.T, r *TPM, want uint64) {
	t.Helper()
	got, err := r.ReadCounter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("ReadCounter = %d; want %d", got, want)
	}
	raw(t, r, func(tpm transport.TPM) {
		c, _ := rawPublic(t, tpm, CounterIndex)
		b, _ := rawPublic(t, tpm, BaseIndex)
		if !c.Attributes.Written || !b.Attributes.Written || !b.Attributes.WriteLocked {
			t.Fatalf("counter written %v, base written %v, base locked %v", c.Attributes.Written, b.Attributes.Written, b.Attributes.WriteLocked)
		}
		if cv, bv := rawRead(t, tpm, CounterIndex), rawRead(t, tpm, BaseIndex); cv-bv != want {
			t.Fatalf("raw counter %d − base %d ≠ %d", cv, bv, want)
		}
	})
}

func TestCounterSimAdvance(t *testing.T) {
	ctx := context.Background()
	r := openSimT(t, t.TempDir())
	defer r.Close()
	var c rot.Counter = r
	checkSettled(t, r, 0)
	if err := c.AdvanceCounter(ctx, 3); err != nil {
		t.Fatal(err)
	}
	checkSettled(t, r, 3)
	for _, v := range []uint64{2, 3, 0} {
		if err := c.AdvanceCounter(ctx, v); err != nil {
			t.Fatalf("AdvanceCounter(%d) at 3: %v", v, err)
		}
		checkSettled(t, r, 3)
	}
	big := uint64(3 + rot.MaxCounterStep + 1)
	err := c.AdvanceCounter(ctx, big)
	if err == nil || !strings.Contains(err.Error(), "from 3 to "+fmt.Sprint(big)) {
		t.Fatalf("a step of MaxCounterStep+1: %v", err)
	}
	if err := c.AdvanceCounter(ctx, ^uint64(0)); err == nil {
		t.Fatal("a step to 2⁶⁴−1 was accepted")
	}
	checkSettled(t, r, 3)
	if err := c.AdvanceCounter(ctx, 3+rot.MaxCounterStep); err != nil {
		t.Fatalf("a step of exactly MaxCounterStep: %v", err)
	}
	checkSettled(t, r, 3+rot.MaxCounterStep)

	// The base is locked for good.
	raw(t, r, func(tpm transport.TPM) {
		if err := rawWriteBase(tpm, 0); !errors.Is(err, tpm2.TPMRCNVLocked) {
			t.Fatalf("writing the base after its lock: %v; want TPM_RC_NV_LOCKED", err)
		}
	})
}

// TestCounterSimShared: a second root on the same TPM sees the counter, also after the first
// one closed.
func TestCounterSimShared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r1 := openSimT(t, dir)
	r2 := openSimT(t, dir)
	defer r2.Close()
	if err := r1.AdvanceCounter(ctx, 7); err != nil {
		t.Fatal(err)
	}
	r1.Close()
	if v, err := r2.ReadCounter(ctx); err != nil || v != 7 {
		t.Fatalf("the other root reads %d, %v; want 7", v, err)
	}
	if _, err := r1.ReadCounter(ctx); !errors.Is(err, errClosed) {
		t.Fatalf("a closed root: %v", err)
	}
}

// TestCounterSimPartialInit: each state a crash can leave the two indices in is completed, and
// the counter then works.
func TestCounterSimPartialInit(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, tpm transport.TPM)
	}{
		{"counter defined, never incremented", func(t *testing.T, tpm transport.TPM) {
			rawDefine(t, tpm, wantCounterPublic)
		}},
		{"counter incremented, no base", func(t *testing.T, tpm transport.TPM) {
			rawDefine(t, tpm, wantCounterPublic)
			rawIncrement(t, tpm)
		}},
		{"base defined, not written", func(t *testing.T, tpm transport.TPM) {
			rawDefine(t, tpm, wantCounterPublic)
			rawIncrement(t, tpm)
			rawDefine(t, tpm, wantBasePublic)
		}},
		{"base written, not locked", func(t *testing.T, tpm transport.TPM) {
			rawDefine(t, tpm, wantCounterPublic)
			rawIncrement(t, tpm)
			rawDefine(t, tpm, wantBasePublic)
			if err := rawWriteBase(tpm, rawRead(t, tpm, CounterIndex)); err != nil {
				t.Fatal(err)
			}
		}},
		{"base defined before the counter", func(t *testing.T, tpm transport.TPM) {
			rawDefine(t, tpm, wantBasePublic)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Open the TPM without touching the counter, so setup starts from an empty NV.
			r := openSimT(t, t.TempDir())
			defer r.Close()
			raw(t, r, func(tpm transport.TPM) {
				for _, h := range []tpm2.TPMHandle{CounterIndex, BaseIndex} {
					if _, err := (tpm2.NVReadPublic{NVIndex: h}).Execute(tpm); !errors.Is(err, tpm2.TPMRCHandle) {
						t.Fatalf("NV index %#x exists in a fresh simulator: %v", uint32(h), err)
					}
				}
				c.setup(t, tpm)
			})
			checkSettled(t, r, 0)
			if err := r.AdvanceCounter(context.Background(), 2); err != nil {
				t.Fatal(err)
			}
			checkSettled(t, r, 2)
		})
	}
}

// TestCounterSimBaseAboveCounter: a base that was replaced by a larger one is reported as
// tampering, not read as a counter.
func TestCounterSimBaseAboveCounter(t *testing.T) {
	ctx := context.Background()
	r := openSimT(t, t.TempDir())
	defer r.Close()
	if err := r.AdvanceCounter(ctx, 2); err != nil {
		t.Fatal(err)
	}
	raw(t, r, func(tpm transport.TPM) {
		c := rawRead(t, tpm, CounterIndex)
		rawUndefine(t, tpm, BaseIndex)
		rawDefine(t, tpm, wantBasePublic)
		if err := rawWriteBase(tpm, c+10); err != nil {
			t.Fatal(err)
		}
		rawLockBase(t, tpm)
	})
	if _, err := r.ReadCounter(ctx); err == nil || !strings.Contains(err.Error(), "below its base") {
		t.Fatalf("ReadCounter: %v; want an error about the base", err)
	}
	if err := r.AdvanceCounter(ctx, 3); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("AdvanceCounter: %v; want an error about tampering", err)
	}
}

// TestCounterSimOwnerResetsIt is the limit the package doc names: with the owner authorization
// (empty, as this package assumes) someone on the device undefines the base, and the counter
// starts again from 0.
func TestCounterSimOwnerResetsIt(t *testing.T) {
	ctx := context.Background()
	r := openSimT(t, t.TempDir())
	defer r.Close()
	if err := r.AdvanceCounter(ctx, 4); err != nil {
		t.Fatal(err)
	}
	raw(t, r, func(tpm transport.TPM) { rawUndefine(t, tpm, BaseIndex) })
	checkSettled(t, r, 0)
}

// TestCounterSimRedefinedCounterResumes is the TPM property the design rests on: a counter index
// undefined and defined again starts above the highest value it had, so with the base kept the
// counter never goes down.
func TestCounterSimRedefinedCounterResumes(t *testing.T) {
	ctx := context.Background()
	r := openSimT(t, t.TempDir())
	defer r.Close()
	if err := r.AdvanceCounter(ctx, 5); err != nil {
		t.Fatal(err)
	}
	var before uint64
	raw(t, r, func(tpm transport.TPM) {
		before = rawRead(t, tpm, CounterIndex)
		rawUndefine(t, tpm, CounterIndex)
		rawDefine(t, tpm, wantCounterPublic)
		rawIncrement(t, tpm)
		if after := rawRead(t, tpm, CounterIndex); after <= before {
			t.Fatalf("the redefined counter starts at %d; it was %d", after, before)
		}
	})
	v, err := r.ReadCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v < 5 {
		t.Fatalf("after the counter index was redefined the counter reads %d; it was 5", v)
	}
	t.Logf("raw counter was %d; after redefinition the counter reads %d", before, v)

	// The same when the agent itself finds the counter undefined and defines it.
	raw(t, r, func(tpm transport.TPM) { rawUndefine(t, tpm, CounterIndex) })
	w, err := r.ReadCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w < v {
		t.Fatalf("the counter went from %d to %d", v, w)
	}
}

// TestCounterSimForeignIndex: an index that is not the design's, at either handle, is an error
// and is left as it was.
func TestCounterSimForeignIndex(t *testing.T) {
	withAttrs := func(p tpm2.TPMSNVPublic, f func(*tpm2.TPMANV)) tpm2.TPMSNVPublic {
		f(&p.Attributes)
		return p
	}
	cases := []struct {
		name    string
		foreign tpm2.TPMSNVPublic
	}{
		{"ordinary index at the counter's handle", withAttrs(wantBasePublic, func(a *tpm2.TPMANV) { a.WriteDefine, a.WriteAll = false, false })},
		{"counter without NO_DA", withAttrs(wantCounterPublic, func(a *tpm2.TPMANV) { a.NoDA = false })},
		{"counter writable by the owner", withAttrs(wantCounterPublic, func(a *tpm2.TPMANV) { a.OwnerWrite = true })},
		{"counter index at the base's handle", withAttrs(wantCounterPublic, func(*tpm2.TPMANV) {})},
		{"base of 16 bytes", func() tpm2.TPMSNVPublic { p := wantBasePublic; p.DataSize = 16; return p }()},
		{"base without WRITEDEFINE", withAttrs(wantBasePublic, func(a *tpm2.TPMANV) { a.WriteDefine = false })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := tpm2.TPMHandle(CounterIndex)
			if strings.Contains(c.name, "base") {
				h = BaseIndex
			}
			c.foreign.NVIndex = h
			r := openSimT(t, t.TempDir())
			defer r.Close()
			raw(t, r, func(tpm transport.TPM) { rawDefine(t, tpm, c.foreign) })
			_, err := r.ReadCounter(context.Background())
			want := fmt.Sprintf("NV index %#x is not the anti-rollback counter's", uint32(h))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("ReadCounter: %v; want %q", err, want)
			}
			if err := r.AdvanceCounter(context.Background(), 1); err == nil {
				t.Fatal("AdvanceCounter worked over a foreign index")
			}
			raw(t, r, func(tpm transport.TPM) {
				got, _ := rawPublic(t, tpm, h)
				if got.Attributes != c.foreign.Attributes || got.DataSize != c.foreign.DataSize {
					t.Fatalf("the foreign index changed: %+v", got)
				}
			})
		})
	}
}

// countdownCtx reports itself cancelled from its nth Err call on.
type countdownCtx struct {
	context.Context
	left atomic.Int32
}

func (c *countdownCtx) Err() error {
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestCounterSimCancelled: a cancelled context changes nothing; one cancelled part way leaves
// the counter between the old value and the target, and the same call later finishes.
func TestCounterSimCancelled(t *testing.T) {
	r := openSimT(t, t.TempDir())
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.AdvanceCounter(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: %v", err)
	}
	checkSettled(t, r, 0)

	cd := &countdownCtx{Context: context.Background()}
	cd.left.Store(4)
	if err := r.AdvanceCounter(cd, 10); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped at") {
		t.Fatalf("cancelled part way: %v", err)
	}
	v, err := r.ReadCounter(context.Background())
	if err != nil || v == 0 || v >= 10 {
		t.Fatalf("after a cancel part way the counter reads %d, %v; want between 0 and 10", v, err)
	}
	if err := r.AdvanceCounter(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	checkSettled(t, r, 10)
}

// TestCounterSimForgetsOnRestart: the simulator's NV is manufactured afresh when it starts
// again, as the package doc says, so its counter is 0 again.
func TestCounterSimForgetsOnRestart(t *testing.T) {
	dir := t.TempDir()
	r := openSimT(t, dir)
	if err := r.AdvanceCounter(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	checkSettled(t, r, 3)
	r.Close()
	r = openSimT(t, dir)
	defer r.Close()
	checkSettled(t, r, 0)
}
