package apitoken

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRoundTrip(t *testing.T) {
	secret, hash, err := New(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, Prefix) || len(secret) != SecretLen {
		t.Fatalf("bad secret %q", secret)
	}
	h, err := Hash(secret)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h, hash) {
		t.Fatal("hash mismatch")
	}
	other, _, _ := New(rand.Reader)
	h2, _ := Hash(other)
	if bytes.Equal(h, h2) {
		t.Fatal("two tokens hash alike")
	}
}

func TestHashRejectsMalformed(t *testing.T) {
	good, _, _ := New(rand.Reader)
	for _, s := range []string{"", "rpt_", "Bearer x", good[:len(good)-1], good + "A", "xyz_" + good[4:],
		Prefix + strings.Repeat("!", SecretLen-len(Prefix)), strings.Repeat("a", 10000)} {
		if _, err := Hash(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("Hash(%.20q...) = %v, want ErrMalformed", s, err)
		}
	}
}

func TestNewFailsOnBadRandomness(t *testing.T) {
	if _, _, err := New(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Fatal("want error")
	}
}

func FuzzHash(f *testing.F) {
	good, _, _ := New(rand.Reader)
	f.Add(good)
	f.Add("rpt_")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := Hash(s)
		if err == nil && (len(h) != 32 || !strings.HasPrefix(s, Prefix)) {
			t.Fatalf("accepted %q", s)
		}
	})
}
