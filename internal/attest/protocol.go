// Package attest is remote attestation's verifier and the protocol both ends share. The
// verifier decides and never acts: given what the service knows of a device and the evidence
// the device sent (a TPM quote, its measurement log, the keys it wants certified, and the
// answer to a credential-activation challenge), it returns the measurements it found trustworthy
// or a Failure with a stable reason. Issuing certificates is the CA's job; recording outcomes
// is the caller's.
//
// Trust: everything in Evidence is hostile until checked here. The Device fields come from the
// service's own store and are trusted; the EK and AK public keys in them were checked for form at
// claim time, and credential activation binds the AK to the EK's TPM on first contact.
package attest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
)

// Protocol constants.
const (
	ActivationSecretSize = 32
	MaxKeys              = 64
	MaxComponentLen      = 64
	MaxQuoteSize         = 4 << 10
)

// Key is a public key a device asks to have certified: its own ("" component) or an app's.
type Key struct {
	Component string
	PublicKey []byte // DER SubjectPublicKeyInfo
}

// QualifyingData is what a device puts in its quote's extraData: it binds the quote to the
// verifier's nonce and to the exact set of keys to be certified, so neither can be swapped.
//
//	SHA-256("rampart-attest-v1\x00" || nonce || u32(len(keys)) || for each key sorted by
//	        component: u16(len(component)) || component || u32(len(spki)) || spki)
func QualifyingData(nonce []byte, keys []Key) []byte {
	sorted := append([]Key(nil), keys...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Component < sorted[j].Component })
	h := sha256.New()
	h.Write([]byte("rampart-attest-v1\x00"))
	h.Write(nonce)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(sorted)))
	h.Write(n[:])
	for _, k := range sorted {
		var l2 [2]byte
		binary.BigEndian.PutUint16(l2[:], uint16(len(k.Component)))
		h.Write(l2[:])
		h.Write([]byte(k.Component))
		binary.BigEndian.PutUint32(n[:], uint32(len(k.PublicKey)))
		h.Write(n[:])
		h.Write(k.PublicKey)
	}
	return h.Sum(nil)
}

// MakeActivation seals secret to the device's EK and AK name (TPM2_MakeCredential): only the
// TPM holding that EK, and holding an object with that name, can recover it.
func MakeActivation(rnd io.Reader, ekSPKI, akPublic, secret []byte) (idObject, encSecret []byte, err error) {
	area, err := rot.EKPublicArea(ekSPKI)
	if err != nil {
		return nil, nil, err
	}
	ek, err := tpm2.ImportEncapsulationKey(area)
	if err != nil {
		return nil, nil, fmt.Errorf("EK: %w", err)
	}
	ak, err := tpm2.Unmarshal[tpm2.TPMTPublic](akPublic)
	if err != nil {
		return nil, nil, fmt.Errorf("AK public area: %w", err)
	}
	name, err := tpm2.ObjectName(ak)
	if err != nil {
		return nil, nil, fmt.Errorf("AK name: %w", err)
	}
	return tpm2.CreateCredential(rnd, ek, name.Buffer, secret)
}

// sortedEqual reports whether two int sets are equal.
func sortedEqual(a, b []int) bool {
	a, b = append([]int(nil), a...), append([]int(nil), b...)
	sort.Ints(a)
	sort.Ints(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
