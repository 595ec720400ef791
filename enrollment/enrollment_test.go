package enrollment_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
)

func TestRoundTrip(t *testing.T) {
	for _, opt := range []enrollmenttest.Options{{}, {EKCertificate: true}, {RootOfTrust: "tpm", EKCertificate: true}} {
		d := enrollmenttest.New(t, opt)
		b, err := d.Record.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r, err := enrollment.Parse(b)
		if err != nil {
			t.Fatalf("Parse: %v\n%s", err, b)
		}
		if r.DeviceID != d.Record.DeviceID || r.IsSoftware() != (opt.RootOfTrust == "") {
			t.Fatalf("round trip changed the record: %+v", r)
		}
		ak, err := enrollment.ParseAKPublic(r.AKPublic)
		if err != nil {
			t.Fatal(err)
		}
		if !ak.Key.(*ecdsa.PublicKey).Equal(&d.AK.PublicKey) {
			t.Fatal("AK public key changed")
		}
	}
}

// mutate returns a valid record's JSON after f changed its decoded form.
func mutate(t *testing.T, f func(m map[string]any)) []byte {
	d := enrollmenttest.New(t, enrollmenttest.Options{EKCertificate: true})
	b, _ := json.Marshal(d.Record)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, _ := json.Marshal(m)
	return out
}

func TestParseRejects(t *testing.T) {
	other := enrollmenttest.New(t, enrollmenttest.Options{EKCertificate: true}).Record
	rsaKey, _ := rsaPublicDER(1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalPKIXPublicKey(&p224.PublicKey)
	akNoRestrict := func() []byte {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p := enrollmenttest.AKTemplate(&k.PublicKey)
		p.ObjectAttributes.Restricted = false
		return tpm2.Marshal(p)
	}()
	akOffCurve := func() []byte {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p := enrollmenttest.AKTemplate(&k.PublicKey)
		pt, _ := p.Unique.ECC()
		pt.X.Buffer[5] ^= 1
		return tpm2.Marshal(p)
	}()
	cases := map[string]struct {
		doc   []byte
		field string
	}{
		"version 2":          {mutate(t, func(m map[string]any) { m["version"] = 2 }), "version"},
		"no version":         {mutate(t, func(m map[string]any) { delete(m, "version") }), "version"},
		"unknown field":      {mutate(t, func(m map[string]any) { m["secret"] = "x" }), "secret"},
		"string version":     {mutate(t, func(m map[string]any) { m["version"] = "1" }), "version"},
		"bad rot":            {mutate(t, func(m map[string]any) { m["root_of_trust"] = "pluton" }), "root_of_trust"},
		"no rot":             {mutate(t, func(m map[string]any) { delete(m, "root_of_trust") }), "root_of_trust"},
		"upper device id":    {mutate(t, func(m map[string]any) { m["device_id"] = strings.ToUpper(m["device_id"].(string)) }), "device_id"},
		"wrong device id":    {mutate(t, func(m map[string]any) { m["device_id"] = other.DeviceID }), "device_id"},
		"no device id":       {mutate(t, func(m map[string]any) { delete(m, "device_id") }), "device_id"},
		"no ek":              {mutate(t, func(m map[string]any) { delete(m, "ek_public") }), "ek_public"},
		"ek not base64":      {mutate(t, func(m map[string]any) { m["ek_public"] = "!!!" }), "ek_public"},
		"ek garbage":         {mutate(t, func(m map[string]any) { m["ek_public"] = "AAAA" }), "ek_public"},
		"ek weak rsa":        {mutate(t, func(m map[string]any) { m["ek_public"] = rsaKey }), "ek_public"},
		"ek p224":            {mutate(t, func(m map[string]any) { m["ek_public"] = p224DER }), "ek_public"},
		"cert for other key": {mutate(t, func(m map[string]any) { m["ek_certificate"] = other.EKCertificate }), "ek_certificate"},
		"cert garbage":       {mutate(t, func(m map[string]any) { m["ek_certificate"] = []byte("nope") }), "ek_certificate"},
		"no ak":              {mutate(t, func(m map[string]any) { delete(m, "ak_public") }), "ak_public"},
		"ak garbage":         {mutate(t, func(m map[string]any) { m["ak_public"] = []byte{0, 1, 2} }), "ak_public"},
		"ak trailing":        {mutate(t, func(m map[string]any) { m["ak_public"] = append(append([]byte{}, other.AKPublic...), 0) }), "ak_public"},
		"ak unrestricted":    {mutate(t, func(m map[string]any) { m["ak_public"] = akNoRestrict }), "ak_public"},
		"ak off curve":       {mutate(t, func(m map[string]any) { m["ak_public"] = akOffCurve }), "ak_public"},
		"agent version ctrl": {mutate(t, func(m map[string]any) { m["agent_version"] = "1.0\n" }), "agent_version"},
		"agent version long": {mutate(t, func(m map[string]any) { m["agent_version"] = strings.Repeat("x", 65) }), "agent_version"},
		"oversized":          {[]byte(`{"version":1,"agent_version":"` + strings.Repeat("x", enrollment.MaxRecordSize) + `"}`), ""},
		"not json":           {[]byte("hello"), ""},
		"array":              {[]byte("[]"), ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := enrollment.Parse(c.doc)
			var e *enrollment.Error
			if !errors.As(err, &e) {
				t.Fatalf("want *enrollment.Error, got %v", err)
			}
			if c.field != "" {
				found := false
				for _, p := range e.Problems {
					found = found || p.Field == c.field
				}
				if !found {
					t.Fatalf("no problem reported for %s: %v", c.field, err)
				}
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	doc := mutate(t, func(m map[string]any) {
		m["root_of_trust"] = "x"
		m["ak_public"] = "AAAA"
		m["agent_version"] = "\x01"
	})
	_, err := enrollment.Parse(doc)
	var e *enrollment.Error
	if !errors.As(err, &e) || len(e.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
}

func rsaPublicDER(bits int) ([]byte, error) {
	k, err := rsaKey(bits)
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKIXPublicKey(&k.PublicKey)
}

func FuzzParse(f *testing.F) {
	for _, opt := range []enrollmenttest.Options{{}, {EKCertificate: true}} {
		b, _ := enrollmenttest.New(f, opt).Record.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := enrollment.Parse(data)
		if err != nil {
			if r != nil {
				t.Fatal("record returned with an error")
			}
			return
		}
		if r.DeviceID != enrollment.DeviceID(r.EKPublic) {
			t.Fatal("accepted a record whose device ID does not match its EK")
		}
		if _, err := enrollment.ParseAKPublic(r.AKPublic); err != nil {
			t.Fatal("accepted a record with a bad AK")
		}
	})
}

func FuzzParseAKPublic(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(tpm2.Marshal(enrollmenttest.AKTemplate(&k.PublicKey)))
	f.Add([]byte{0x00, 0x23, 0x00, 0x0b})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = enrollment.ParseAKPublic(b)
	})
}
