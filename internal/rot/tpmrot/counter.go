package tpmrot

// The anti-rollback counter (rot.Counter) in two NV indices in the owner hierarchy:
//
//   - the counter, CounterIndex: an NV counter index (TPM_NT_COUNTER, 8 bytes, attributes
//     AUTHWRITE | AUTHREAD | OWNERREAD | NO_DA, name algorithm SHA-256, no policy, empty
//     authValue). Only TPM2_NV_Increment changes it, by one. The TPM sets its first value, at
//     the first increment, to one more than the highest value any counter on this TPM has had
//     (TPM 2.0 Part 1, "NV Counters"), so it starts at an arbitrary number, and an index that is
//     undefined and defined again never comes back lower than it was;
//   - the base, BaseIndex: an ordinary 8-byte index (TPM_NT_ORDINARY, attributes AUTHWRITE |
//     AUTHREAD | OWNERREAD | NO_DA | WRITEDEFINE | WRITEALL), written once with the counter's
//     first value and then locked with TPM2_NV_WriteLock: WRITEDEFINE makes that lock last until
//     the index is deleted.
//
// The value reported is counter − base: 0 right after the two are made. Nothing of it is in a
// file, so someone who can write the agent's state directory, or the disk offline, cannot lower
// it; a new state directory on the same TPM finds the same counter.
//
// Making the two is crash-safe and idempotent: each use finds where a previous one stopped and
// goes on (counter undefined: define it; not yet written: increment it once; base undefined:
// define it; not written: write the counter's value; not locked: lock it). The base is made
// after the counter, so a counter that is deleted and made again while the base stays resumes
// above its old value, and reads higher, never lower.
//
// What it does not resist: someone who runs code on the device with the owner authorization,
// which is empty on a TPM provisioned by default and which the rest of this package assumes
// empty. They can undefine the base (and the counter), and the next use defines the base again
// at the counter's current value, which reads 0: the same person could delete or rewrite any
// index in the owner hierarchy. The remedies, not done here, are an owner authorization that the
// agent does not hold, or indices the platform creates (TPMA_NV_PLATFORMCREATE, with
// TPMA_NV_POLICY_DELETE) that owner authorization cannot delete. A base that reads above the
// counter cannot arise from crashes, only from tampering, and is an error.
//
// On "tpm-sim" the counter is worth no more than the rest of the simulator: its NV is in the
// process's memory and is manufactured afresh whenever the simulator starts (see sim.go), so the
// counter reads 0 again after the agent restarts.
//
// Every increment is an NV write, and TPM NV wears out (TPMs promise some hundreds of thousands
// of writes to a counter, and rate-limit them): a caller advances the counter rarely and by
// small steps, at most rot.MaxCounterStep at a time. The OS update machine advances it only
// when it commits an update, by that release's security-version step.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
)

// NV indices of the anti-rollback counter, in the owner's range (TCG handle registry:
// 0x01000000 to 0x013fffff).
const (
	CounterIndex tpm2.TPMHandle = 0x01300001
	BaseIndex    tpm2.TPMHandle = 0x01300002
)

// counterPublic and basePublic are the indices' public areas as defined, before TPMA_NV_WRITTEN
// and TPMA_NV_WRITELOCKED are set.
var (
	counterPublic = tpm2.TPMSNVPublic{
		NVIndex: CounterIndex,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			NT: tpm2.TPMNTCounter, AuthWrite: true, AuthRead: true, OwnerRead: true, NoDA: true,
		},
		DataSize: 8,
	}
	basePublic = tpm2.TPMSNVPublic{
		NVIndex: BaseIndex,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			NT: tpm2.TPMNTOrdinary, AuthWrite: true, AuthRead: true, OwnerRead: true, NoDA: true,
			WriteDefine: true, WriteAll: true,
		},
		DataSize: 8,
	}
)

// ReadCounter returns the anti-rollback counter, making its NV indices first if they are not
// yet all there.
func (r *TPM) ReadCounter(ctx context.Context) (uint64, error) {
	if err := r.lock(ctx); err != nil {
		return 0, err
	}
	defer r.mu.Unlock()
	return r.counterLocked()
}

// AdvanceCounter raises the anti-rollback counter to v with one TPM2_NV_Increment per step. If
// ctx ends part way, the counter stays where the increments left it, between its old value and
// v, and a later call with the same v goes on from there.
func (r *TPM) AdvanceCounter(ctx context.Context, v uint64) error {
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.mu.Unlock()
	cur, err := r.counterLocked()
	if err != nil {
		return err
	}
	if v <= cur {
		return nil
	}
	if v-cur > rot.MaxCounterStep {
		return fmt.Errorf("TPM root of trust: raising the anti-rollback counter from %d to %d is a step of %d; the most one step may be is %d",
			cur, v, v-cur, rot.MaxCounterStep)
	}
	counter, err := r.readNVPublic(CounterIndex)
	if err != nil {
		return err
	}
	for i := cur; i < v; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("TPM root of trust: raising the anti-rollback counter to %d: stopped at %d: %w", v, i, err)
		}
		if err := r.increment(counter); err != nil {
			return fmt.Errorf("TPM root of trust: raising the anti-rollback counter to %d: stopped at %d: %w", v, i, err)
		}
	}
	got, err := r.counterLocked()
	if err != nil {
		return err
	}
	if got != v {
		return fmt.Errorf("TPM root of trust: the anti-rollback counter reads %d after raising it to %d; something else increments %#x", got, v, uint32(CounterIndex))
	}
	return nil
}

// counterLocked makes whatever part of the two indices is missing and returns counter − base.
func (r *TPM) counterLocked() (uint64, error) {
	counter, err := r.ensureIndex(counterPublic)
	if err != nil {
		return 0, err
	}
	if !counter.attrs.Written {
		if err := r.increment(counter); err != nil {
			return 0, fmt.Errorf("TPM root of trust: starting the anti-rollback counter: %w", err)
		}
		if counter, err = r.readNVPublic(CounterIndex); err != nil {
			return 0, err
		}
	}
	c, err := r.readUint64(counter)
	if err != nil {
		return 0, err
	}
	base, err := r.ensureIndex(basePublic)
	if err != nil {
		return 0, err
	}
	if !base.attrs.Written {
		_, err := tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: BaseIndex, Name: base.name, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    base.named(),
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: binary.BigEndian.AppendUint64(nil, c)},
		}.Execute(r.tpm)
		if err != nil {
			return 0, fmt.Errorf("TPM root of trust: writing the anti-rollback counter's base %#x: %w", uint32(BaseIndex), err)
		}
		if base, err = r.readNVPublic(BaseIndex); err != nil {
			return 0, err
		}
	}
	if !base.attrs.WriteLocked {
		_, err := tpm2.NVWriteLock{
			AuthHandle: tpm2.AuthHandle{Handle: BaseIndex, Name: base.name, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    base.named(),
		}.Execute(r.tpm)
		if err != nil {
			return 0, fmt.Errorf("TPM root of trust: locking the anti-rollback counter's base %#x: %w", uint32(BaseIndex), err)
		}
		if base, err = r.readNVPublic(BaseIndex); err != nil {
			return 0, err
		}
	}
	b, err := r.readUint64(base)
	if err != nil {
		return 0, err
	}
	if b > c {
		return 0, fmt.Errorf("TPM root of trust: the anti-rollback counter (%d at %#x) is below its base (%d at %#x): the TPM's NV was tampered with",
			c, uint32(CounterIndex), b, uint32(BaseIndex))
	}
	return c - b, nil
}

// nvIndex is an NV index as TPM2_NV_ReadPublic describes it.
type nvIndex struct {
	handle tpm2.TPMHandle
	attrs  tpm2.TPMANV
	name   tpm2.TPM2BName // changes when TPMA_NV_WRITTEN or TPMA_NV_WRITELOCKED does
}

func (x *nvIndex) named() tpm2.NamedHandle { return tpm2.NamedHandle{Handle: x.handle, Name: x.name} }

// errNoIndex is readNVPublic's error for an index that is not defined.
var errNoIndex = errors.New("not defined")

// readNVPublic reads an index's public area; errNoIndex if it is not defined.
func (r *TPM) readNVPublic(h tpm2.TPMHandle) (*nvIndex, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: h}.Execute(r.tpm)
	if errors.Is(err, tpm2.TPMRCHandle) {
		return nil, fmt.Errorf("TPM root of trust: NV index %#x: %w", uint32(h), errNoIndex)
	}
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: reading NV index %#x's public area: %w", uint32(h), err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: NV index %#x's public area: %w", uint32(h), err)
	}
	return &nvIndex{handle: h, attrs: pub.Attributes, name: rsp.NVName}, checkNVPublic(pub, h)
}

// ensureIndex defines the index want describes if it is not defined, and checks that the one
// defined is it.
func (r *TPM) ensureIndex(want tpm2.TPMSNVPublic) (*nvIndex, error) {
	x, err := r.readNVPublic(want.NVIndex)
	if !errors.Is(err, errNoIndex) {
		return x, err
	}
	_, err = tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		PublicInfo: tpm2.New2B(want),
	}.Execute(r.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: defining NV index %#x for the anti-rollback counter: %w", uint32(want.NVIndex), err)
	}
	return r.readNVPublic(want.NVIndex)
}

// checkNVPublic checks that the index at h is the one this package defines there, apart from
// the attributes the TPM sets as the index is used. It never deletes an index that is not:
// that could be someone else's.
func checkNVPublic(got *tpm2.TPMSNVPublic, h tpm2.TPMHandle) error {
	want := counterPublic
	if h == BaseIndex {
		want = basePublic
	}
	attrs := got.Attributes
	attrs.Written, attrs.WriteLocked, attrs.ReadLocked = false, false, false
	if got.NVIndex != h || got.NameAlg != want.NameAlg || len(got.AuthPolicy.Buffer) != 0 ||
		got.DataSize != want.DataSize || attrBits(attrs) != attrBits(want.Attributes) {
		return fmt.Errorf("TPM root of trust: NV index %#x is not the anti-rollback counter's (type %v, attributes %#x, size %d, name algorithm %v, policy %d bytes; want type %v, attributes %#x, size %d): it is left alone; free the handle or clear the TPM",
			uint32(h), got.Attributes.NT, attrBits(got.Attributes), got.DataSize, got.NameAlg, len(got.AuthPolicy.Buffer),
			want.Attributes.NT, attrBits(want.Attributes), want.DataSize)
	}
	return nil
}

func attrBits(a tpm2.TPMANV) uint32 { return binary.BigEndian.Uint32(tpm2.Marshal(a)) }

// increment runs TPM2_NV_Increment on the counter with its own (empty) authValue.
func (r *TPM) increment(counter *nvIndex) error {
	_, err := tpm2.NVIncrement{
		AuthHandle: tpm2.AuthHandle{Handle: CounterIndex, Name: counter.name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    counter.named(),
	}.Execute(r.tpm)
	if err != nil {
		return fmt.Errorf("incrementing NV index %#x: %w", uint32(CounterIndex), err)
	}
	return nil
}

// readUint64 reads an 8-byte index with its own (empty) authValue.
func (r *TPM) readUint64(x *nvIndex) (uint64, error) {
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: x.handle, Name: x.name, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    x.named(),
		Size:       8,
	}.Execute(r.tpm)
	if err != nil {
		return 0, fmt.Errorf("TPM root of trust: reading NV index %#x: %w", uint32(x.handle), err)
	}
	if len(rsp.Data.Buffer) != 8 {
		return 0, fmt.Errorf("TPM root of trust: NV index %#x returned %d bytes; want 8", uint32(x.handle), len(rsp.Data.Buffer))
	}
	return binary.BigEndian.Uint64(rsp.Data.Buffer), nil
}

var _ rot.Counter = (*TPM)(nil)
