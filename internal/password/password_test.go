package password

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

// fast keeps the tests quick; the encoding is the same at any cost.
var fast = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashAndVerify(t *testing.T) {
	h, err := Hash(rand.Reader, "correct horse battery staple", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("encoding %q", h)
	}
	for pw, want := range map[string]bool{"correct horse battery staple": true, "correct horse battery stapl": false, "": false,
		"Correct horse battery staple": false, strings.Repeat("x", MaxPassword+1): false} {
		ok, err := Verify(h, pw)
		if err != nil || ok != want {
			t.Errorf("Verify(%.20q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	// Each hash has its own salt.
	h2, _ := Hash(rand.Reader, "correct horse battery staple", fast)
	if h2 == h {
		t.Error("two hashes of one password are equal")
	}
	if _, err := Hash(rand.Reader, strings.Repeat("x", MaxPassword+1), fast); !errors.Is(err, ErrTooLong) {
		t.Errorf("a long password: %v", err)
	}
}

// TestKnownVector checks the encoding against a hash computed from a fixed salt, so a change
// of encoding or of the parameters' meaning cannot go unnoticed.
func TestKnownVector(t *testing.T) {
	h, err := Hash(bytes.NewReader(bytes.Repeat([]byte{1}, 16)), "password", fast)
	if err != nil {
		t.Fatal(err)
	}
	const want = "$argon2id$v=19$m=64,t=1,p=1$AQEBAQEBAQEBAQEBAQEBAQ$"
	if !strings.HasPrefix(h, want) {
		t.Fatalf("got %s, want prefix %s", h, want)
	}
	p, salt, key, err := Decode(h)
	if err != nil || p != fast || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("Decode: %+v %x %x %v", p, salt, key, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, _ := Hash(rand.Reader, "pw", fast)
	parts := strings.Split(good, "$")
	for name, enc := range map[string]string{
		"empty":         "",
		"bcrypt":        "$2b$10$abcdefghijklmnopqrstuv",
		"argon2i":       strings.Replace(good, "argon2id", "argon2i", 1),
		"version":       strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":   strings.Replace(good, "m=64", "m=4194304", 1),
		"zero time":     strings.Replace(good, "t=1", "t=0", 1),
		"many passes":   strings.Replace(good, "t=1", "t=1000", 1),
		"threads":       strings.Replace(good, "p=1", "p=300", 1),
		"leading zero":  strings.Replace(good, "m=64", "m=064", 1),
		"param order":   strings.Replace(good, "m=64,t=1", "t=1,m=64", 1),
		"short salt":    "$" + strings.Join([]string{parts[1], parts[2], parts[3], "AQEB", parts[5]}, "$"),
		"bad base64":    "$" + strings.Join([]string{parts[1], parts[2], parts[3], parts[4], "!!!"}, "$"),
		"padded base64": good + "==",
		"extra part":    good + "$x",
		"long":          good + strings.Repeat("A", MaxEncoded),
	} {
		if _, _, _, err := Decode(enc); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode(%q) = %v, want ErrMalformed", name, enc, err)
		}
		if ok, err := Verify(enc, "pw"); ok || err == nil {
			t.Errorf("%s: Verify = %v, %v", name, ok, err)
		}
	}
}

// FuzzDecode: any string decodes within the bounds or is refused as malformed; what decodes
// encodes back to the same string (it never runs argon2, whose cost a hash sets).
func FuzzDecode(f *testing.F) {
	good, _ := Hash(rand.Reader, "pw", fast)
	f.Add(good)
	f.Add("$argon2id$v=19$m=65536,t=2,p=2$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, enc string) {
		p, salt, key, err := Decode(enc)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if p.check() != nil || len(salt) != p.SaltLen || len(key) != p.KeyLen {
			t.Fatalf("decoded out of bounds: %+v", p)
		}
		if again := encode(p, salt, key); again != enc {
			t.Fatalf("re-encoded %q, want %q", again, enc)
		}
	})
}
