package imagepkg

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// golden reads the golden package.
func golden(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenPackage)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// regions returns the golden package's envelope bounds.
func envelopeBounds(data []byte) (start, end int) {
	n := int(binary.BigEndian.Uint32(data[len(Magic):HeaderSize]))
	return HeaderSize, HeaderSize + n
}

// flip returns a copy of data with the byte at i XORed with x.
func flip(data []byte, i int, x byte) []byte {
	out := bytes.Clone(data)
	out[i] ^= x
	return out
}

// at returns the offset of the first occurrence of s in data after the offset of after.
func at(t *testing.T, data []byte, after, s string) int {
	t.Helper()
	base := 0
	if after != "" {
		base = bytes.Index(data, []byte(after))
		if base < 0 {
			t.Fatalf("%q not found", after)
		}
	}
	i := bytes.Index(data[base:], []byte(s))
	if i < 0 {
		t.Fatalf("%q not found after %q", s, after)
	}
	return base + i
}

// rewrap rebuilds a package with its envelope changed by edit, fixing the length field, as an
// attacker who understands the format would.
func rewrap(t *testing.T, data []byte, edit func(env map[string]any)) []byte {
	t.Helper()
	s, e := envelopeBounds(data)
	var env map[string]any
	if err := json.Unmarshal(data[s:e], &env); err != nil {
		t.Fatal(err)
	}
	edit(env)
	envJSON, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeHeader(&out, envJSON)
	out.Write(data[e:])
	return out.Bytes()
}

// editMetadata rebuilds a package with its metadata text changed by replacing old with new.
func editMetadata(t *testing.T, data []byte, old, new string) []byte {
	t.Helper()
	return rewrap(t, data, func(env map[string]any) {
		md, err := base64.StdEncoding.DecodeString(env["payload"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(md, []byte(old)) {
			t.Fatalf("metadata has no %q", old)
		}
		env["payload"] = base64.StdEncoding.EncodeToString(bytes.Replace(md, []byte(old), []byte(new), 1))
	})
}

// TestTamperMatrix changes every region of the golden package and checks that each change is
// rejected, with an error that names the region.
func TestTamperMatrix(t *testing.T) {
	g := golden(t)
	trusted := []crypto.PublicKey{testKey(t).Public()}
	testID, _ := KeyID(testKey(t).Public())
	otherID, _ := KeyID(otherKey(t).Public())
	envStart, envEnd := envelopeBounds(g)
	payloadLen := len(g) - envEnd
	withLength := func(n uint32) []byte {
		out := bytes.Clone(g)
		binary.BigEndian.PutUint32(out[len(Magic):], n)
		return out
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		trusted []crypto.PublicKey
		region  Region
		msg     string
		is      error
	}{
		// Header.
		{name: "magic first byte", data: flip(g, 0, 0x01), region: RegionMagic, is: ErrNotPackage},
		{name: "magic version byte", data: flip(g, len(Magic)-1, 0x03), region: RegionMagic, msg: `"RAMPKG02"`},
		{name: "length high byte", data: flip(g, len(Magic), 0x01), region: RegionLength, msg: "over the limit"},
		{name: "length zero", data: withLength(0), region: RegionLength, msg: "is 0"},
		{name: "length past the end", data: withLength(uint32(len(g))), region: RegionLength, msg: "runs past the end"},
		{name: "length one more", data: withLength(uint32(envEnd - envStart + 1)), region: RegionEnvelope, msg: "malformed JSON"},
		{name: "length one less", data: withLength(uint32(envEnd - envStart - 1)), region: RegionEnvelope, msg: "malformed JSON"},
		// Envelope.
		{name: "envelope opening brace", data: flip(g, envStart, 0x01), region: RegionEnvelope, msg: "malformed JSON"},
		{name: "envelope closing brace", data: flip(g, envEnd-1, 0x01), region: RegionEnvelope, msg: "malformed JSON"},
		{name: "envelope key", data: flip(g, at(t, g, "", `payloadType`), 0x20), region: RegionEnvelope, msg: "unknown field"},
		{name: "envelope extra field", data: rewrap(t, g, func(e map[string]any) { e["comment"] = "x" }), region: RegionEnvelope, msg: "comment: unknown field"},
		{name: "envelope without signatures", data: rewrap(t, g, func(e map[string]any) { delete(e, "signatures") }), region: RegionEnvelope, msg: "signatures: is required"},
		{name: "payloadType", data: flip(g, at(t, g, `"payloadType"`, `rampart`), 0x01), region: RegionPayloadType},
		{name: "payloadType other", data: rewrap(t, g, func(e map[string]any) { e["payloadType"] = "application/vnd.in-toto+json" }), region: RegionPayloadType},
		{name: "envelope payload not base64", data: flip(g, at(t, g, `"payload":"`, `"payload":"`)+12, 0x80), region: RegionEnvelope, msg: "base64"},
		{name: "envelope payload URL base64", data: rewrap(t, g, func(e map[string]any) {
			p := e["payload"].(string)
			e["payload"] = p[:4] + "-" + p[5:] // '-' is base64url, not standard base64
		}), region: RegionEnvelope, msg: "base64"},
		{name: "envelope payload unpadded", data: rewrap(t, g, func(e map[string]any) { e["payload"] = strings.TrimRight(e["payload"].(string), "=") + "A" }), region: RegionEnvelope, msg: "base64"},
		// Metadata fields: an edit that still parses is caught by the signature.
		{name: "metadata image_version", data: editMetadata(t, g, `"1.4.2"`, `"1.4.3"`), region: RegionSignature, msg: "does not verify"},
		{name: "metadata image_id", data: editMetadata(t, g, `9b1deb4d`, `9b1deb4e`), region: RegionSignature, msg: "does not verify"},
		{name: "metadata component_id", data: editMetadata(t, g, `"component_id":"2a4f`, `"component_id":"3a4f`), region: RegionMetadata, msg: "manifest.ComponentId"},
		{name: "metadata kind", data: editMetadata(t, g, `"application"`, `"applicatiom"`), region: RegionMetadata, msg: "kind:"},
		{name: "metadata kind os", data: editMetadata(t, g, `"application"`, `"os"`), region: RegionMetadata, msg: "manifest: is only for applications"},
		{name: "metadata development", data: editMetadata(t, g, `"development":false`, `"development":true`), region: RegionSignature, msg: "does not verify"},
		{name: "metadata payload digest", data: editMetadata(t, g, `"sha256":"1`, `"sha256":"2`), region: RegionSignature, msg: "does not verify"},
		{name: "metadata payload digest upper case", data: editMetadata(t, g, `"sha256":"`, `"sha256":"A`), region: RegionMetadata, msg: "payload.sha256"},
		{name: "metadata payload size", data: editMetadata(t, g, `"size":9`, `"size":8`), region: RegionPayload, msg: "trailing data"},
		{name: "metadata payload format", data: editMetadata(t, g, `"tar"`, `"zip"`), region: RegionMetadata, msg: "payload.format"},
		{name: "metadata unknown field", data: editMetadata(t, g, `"version":1,`, `"version":1,"signed":true,`), region: RegionMetadata, msg: "signed: unknown field"},
		{name: "metadata duplicate field", data: editMetadata(t, g, `"version":1,`, `"version":1,"version":1,`), region: RegionMetadata, msg: "duplicate key"},
		{name: "metadata not JSON", data: editMetadata(t, g, `{"version"`, `["version"`), region: RegionMetadata, msg: "malformed JSON"},
		{name: "metadata measurements", data: editMetadata(t, g, `"development"`, `"measurements":{"os-bundle":"00"},"development"`), region: RegionMetadata, msg: "measurements: is only for OS bundles"},
		// The manifest inside the metadata.
		{name: "manifest gpio", data: editMetadata(t, g, `"Gpio":[8,9]`, `"Gpio":[8,7]`), region: RegionSignature, msg: "does not verify"},
		{name: "manifest entry point", data: editMetadata(t, g, `"/bin/blinky"`, `"/bin/blinkz"`), region: RegionSignature, msg: "does not verify"},
		{name: "manifest unknown capability", data: editMetadata(t, g, `"Gpio"`, `"Gpjo"`), region: RegionMetadata, msg: "manifest.Capabilities.Gpjo: unknown field"},
		{name: "manifest bad value", data: editMetadata(t, g, `"Gpio":[8,9]`, `"Gpio":[8,8]`), region: RegionMetadata, msg: "manifest.Capabilities.Gpio[1]: repeats"},
		{name: "manifest hardware name", data: editMetadata(t, g, `"Gpio":[8,9]`, `"Gpio":[8,"$LED"]`), region: RegionMetadata, msg: "hardware-definition names"},
		{name: "manifest removed", data: editMetadata(t, g, `"manifest":`, `"manifesto":`), region: RegionMetadata, msg: "manifesto: unknown field"},
		// Signatures and key IDs.
		{name: "signature byte", data: flip(g, at(t, g, `"sig":"`, `"sig":"`)+20, 0x01), region: RegionSignature},
		{name: "signature not base64", data: flip(g, at(t, g, `"sig":"`, `"sig":"`)+20, 0x80), region: RegionSignature, msg: "base64"},
		{name: "keyid byte", data: flip(g, at(t, g, `"keyid":"`, `"keyid":"`)+10, 0x01), region: RegionSignature, is: ErrUntrusted},
		{name: "keyid upper case", data: flip(g, at(t, g, `"keyid":"`, `"keyid":"`)+11, 0x20), region: RegionSignature, msg: "lower-case hex"},
		{name: "keyid of another trusted key", data: bytes.Replace(g, []byte(testID), []byte(otherID), 1),
			trusted: []crypto.PublicKey{testKey(t).Public(), otherKey(t).Public()}, region: RegionSignature, msg: "by trusted key " + otherID + ", does not verify"},
		{name: "keyid emptied", data: rewrap(t, g, func(e map[string]any) { e["signatures"].([]any)[0].(map[string]any)["keyid"] = "" }), region: RegionSignature, msg: "lower-case hex"},
		{name: "signatures removed", data: rewrap(t, g, func(e map[string]any) { e["signatures"] = []any{} }), region: RegionSignature, msg: "not signed"},
		{name: "signature repeated", data: rewrap(t, g, func(e map[string]any) {
			s := e["signatures"].([]any)
			e["signatures"] = append(s, s[0])
		}), region: RegionSignature, msg: "same key"},
		{name: "signature unknown field", data: rewrap(t, g, func(e map[string]any) { e["signatures"].([]any)[0].(map[string]any)["cert"] = "x" }), region: RegionEnvelope, msg: "unknown field"},
		{name: "untrusted signer", data: g, trusted: []crypto.PublicKey{otherKey(t).Public()}, region: RegionSignature, is: ErrUntrusted},
		// Payload.
		{name: "payload first byte", data: flip(g, envEnd, 0x01), region: RegionPayload, is: ErrPayloadDigest},
		{name: "payload middle byte", data: flip(g, envEnd+payloadLen/2, 0x01), region: RegionPayload, is: ErrPayloadDigest},
		{name: "payload last byte", data: flip(g, len(g)-1, 0x01), region: RegionPayload, is: ErrPayloadDigest},
		{name: "payload swapped", data: append(bytes.Clone(g[:envEnd]), bytes.Repeat([]byte{0}, payloadLen)...), region: RegionPayload, is: ErrPayloadDigest},
		// Truncation and trailing data.
		{name: "truncated to nothing", data: nil, region: RegionMagic, is: ErrNotPackage},
		{name: "truncated in the magic", data: g[:5], region: RegionMagic, is: ErrNotPackage},
		{name: "truncated in the length", data: g[:10], region: RegionLength},
		{name: "truncated in the envelope", data: g[:envStart+100], region: RegionLength, msg: "runs past the end"},
		{name: "truncated payload", data: g[:len(g)-1], region: RegionPayload, msg: "truncated"},
		{name: "payload missing", data: g[:envEnd], region: RegionPayload, msg: "truncated"},
		{name: "trailing data", data: append(bytes.Clone(g), 0), region: RegionPayload, msg: "trailing data"},
		{name: "second package appended", data: append(bytes.Clone(g), g...), region: RegionPayload, msg: "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tc.trusted
			if tr == nil {
				tr = trusted
			}
			_, _, err := openAndVerify(tc.data, tr, 1)
			if err == nil {
				t.Fatal("accepted")
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T, not *Error: %v", err, err)
			}
			if pe.Region != tc.region {
				t.Errorf("region %q, want %q: %v", pe.Region, tc.region, err)
			}
			if !strings.HasPrefix(err.Error(), string(tc.region)+": ") {
				t.Errorf("the message does not start with the region: %v", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

// TestEveryByteFlip flips each byte of the golden package, one at a time, and checks that every
// one of the changed packages is rejected.
func TestEveryByteFlip(t *testing.T) {
	g := golden(t)
	trusted := []crypto.PublicKey{testKey(t).Public()}
	_, envEnd := envelopeBounds(g)
	counts := map[Region]int{}
	for i := range g {
		masks := []byte{0x01}
		if i < envEnd {
			masks = append(masks, 0x80, 0xff)
		}
		for _, x := range masks {
			_, _, err := openAndVerify(flip(g, i, x), trusted, 1)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("byte %d ^ %#x: want an *Error, got %v", i, x, err)
			}
			counts[pe.Region]++
		}
	}
	t.Logf("rejections by region: %v", counts)
}
