package keyseal

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	s, err := New(bytes.Repeat([]byte{1}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sealed, err := s.Seal("rec-1", k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Open("rec-1", sealed)
	if err != nil || !got.Equal(k) {
		t.Fatalf("%v", err)
	}
	if _, err := s.Open("rec-2", sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another record's ID: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{2}, 32), nil)
	if _, err := other.Open("rec-1", sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("opened with another key: %v", err)
	}
	for i := range sealed {
		c := append([]byte(nil), sealed...)
		c[i] ^= 1
		if _, err := s.Open("rec-1", c); err == nil {
			t.Fatalf("flipped byte %d went unnoticed", i)
		}
	}
	if _, err := s.Open("rec-1", sealed[:10]); !errors.Is(err, ErrSealed) {
		t.Error("truncated ciphertext opened")
	}
	if _, err := New(make([]byte, 16), nil); err == nil {
		t.Error("a 16-byte key-encryption key accepted")
	}
}
