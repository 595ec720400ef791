package pgpush

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	good := []string{
		`{"o":"x","k":"deployment","t":"t1","g":"g1","d":"d1"}`,
		`{"o":"x","k":"moved","t":"t1","v":"dev1"}`,
		`{"o":"x","k":"wake","t":"t1","v":"dev1"}`,
	}
	for _, p := range good {
		if _, err := Decode(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	bad := map[string]string{
		`{"o":"x","k":"deployment","t":"t1"}`:          "without a group",
		`{"o":"x","k":"moved","t":"t1"}`:               "without a device",
		`{"o":"x","k":"wake","t":"t1"}`:                "without a device",
		`{"o":"x","k":"reboot","t":"t1","g":"g"}`:      "unknown kind",
		`{"k":"moved","t":"t1","v":"d"}`:               "no origin",
		`{"o":"x","k":"moved","t":"t1","v":"d","z":1}`: "unknown field",
		`{"o":"x","k":"moved","t":"t1","v":"d"} {}`:    "after the object",
		`[1]`: "cannot unmarshal",
		`{"o":"` + strings.Repeat("a", MaxPayload) + `"}`: "the limit is",
	}
	for p, want := range bad {
		if _, err := Decode(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: %v, want an error saying %q", p, err, want)
		}
	}
}

func TestChannelIsAnIdentifierPerSchema(t *testing.T) {
	a, b := Channel("public"), Channel("rampart_test_0123")
	if a == b || len(a) > 63 || len(Channel(strings.Repeat("s", 200))) != len(a) {
		t.Fatalf("channels %q %q", a, b)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"o":"x","k":"deployment","t":"t1","g":"g1","d":"d1"}`)
	f.Add(`{"o":"x","k":"moved","t":"t1","v":"dev1"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, p string) {
		m, err := Decode(p)
		if err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxPayload { // escaping can lengthen it
			return
		}
		m2, err := Decode(string(b))
		if err != nil || m2 != m {
			t.Fatalf("%q decoded to %+v, which encodes to %s and decodes to %+v, %v", p, m, b, m2, err)
		}
	})
}
