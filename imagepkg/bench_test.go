package imagepkg

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// benchPayloadSize is the payload the verification benchmarks hash.
const benchPayloadSize = 16 << 20

// benchPackage is a package with a benchPayloadSize payload of random bytes.
func benchPackage(b *testing.B) (*Package, []byte) {
	b.Helper()
	payload := make([]byte, benchPayloadSize)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(payload)
	meta := osMetadata()
	data := build(b, meta, payload, testKey(b))
	p, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	return p, payload
}

// BenchmarkVerifyPayload is package payload verification: the payload streamed from the package
// through SHA-256 and checked against the metadata. Compare it with BenchmarkSHA256.
func BenchmarkVerifyPayload(b *testing.B) {
	p, _ := benchPackage(b)
	b.SetBytes(benchPayloadSize)
	for b.Loop() {
		if err := p.VerifyPayload(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA256 is the ceiling: SHA-256 of the same bytes, in memory.
func BenchmarkSHA256(b *testing.B) {
	_, payload := benchPackage(b)
	b.SetBytes(benchPayloadSize)
	for b.Loop() {
		sha256.Sum256(payload)
	}
}

// BenchmarkOpenVerify is the fixed cost of a package: parsing the header, envelope and metadata,
// and verifying one signature.
func BenchmarkOpenVerify(b *testing.B) {
	data := golden(b)
	trusted := []crypto.PublicKey{testKey(b).Public()}
	for b.Loop() {
		p, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Verify(trusted, 1); err != nil {
			b.Fatal(err)
		}
	}
}
