package appinstall

import (
	"bytes"
	"strings"
	"testing"
)

// seedState is a state file as Install and Rollback write it.
const seedState = `{
  "format": 1,
  "components": {
    "1689d8b2-c835-2e27-27ad-e894d6d15fa9": {
      "current": {
        "id": "0f5f608c-2165-4b49-8444-c48cee170dbd",
        "version": "1.0.0",
        "sha256": "db06e5cd245952a68c48b134b3d2da0bca5baa20b59125b1af19b8397c3b3a3e",
        "development": true,
        "origin": "update",
        "at": "2030-01-01T00:00:00Z",
        "manifest": {"SchemaVersion":1,"Name":"blink","ComponentId":"1689d8b2-c835-2e27-27ad-e894d6d15fa9","EntryPoint":"/bin/app","CmdArgs":["-v"],"Capabilities":{"Gpio":[8,9],"Uart":["ISU0"],"MutableStorage":{"SizeKB":64}},"ApplicationType":"Default"}
      },
      "status": "rolled-back",
      "failed": {
        "id": "6671610c-2c8a-4c53-8afc-c9ee12d6546d",
        "version": "2.0.0",
        "sha256": "83daf7c3cd7d8eed1eafbe41a0424e73c16f460ec9f9dc09a414b28f1aa1d39a",
        "origin": "deployment",
        "at": "2030-01-02T00:00:00+02:00"
      },
      "reason": "exit status 2"
    },
    "5e4b1b9c-2c0e-4d47-9a4c-7f3b1b8f1a20": {
      "current": {
        "id": "6d51a23c-b2a8-4f05-850c-29f330db3b21",
        "version": "2.0.0-rc.1+b7",
        "sha256": "ec841c72d0f36087df28c9a603045efc32aa636a8dbcfdfee72cf72ba5fe78d6",
        "origin": "sideload",
        "at": "2030-01-01T00:00:00Z",
        "manifest": {"SchemaVersion":1,"Name":"sensor","ComponentId":"5e4b1b9c-2c0e-4d47-9a4c-7f3b1b8f1a20","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":{"Gpio":[10]},"ApplicationType":"Default"}
      },
      "previous": {
        "id": "84830758-6fc9-4026-8ef6-f6c3988648ba",
        "version": "1.0.0",
        "sha256": "848307586fc9026a4ef6f6c3988648bade335fab6396fac91efa26957350d031",
        "origin": "update",
        "at": "2029-12-01T00:00:00Z",
        "manifest": {"SchemaVersion":1,"Name":"sensor","ComponentId":"5e4b1b9c-2c0e-4d47-9a4c-7f3b1b8f1a20","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":{},"ApplicationType":"Default"}
      },
      "status": "installed"
    }
  },
  "purge": ["7a3c6b1e-0d2f-4e8a-9b7c-1d2e3f4a5b6c"]
}`

func TestSeedStateParses(t *testing.T) {
	st, err := parseState([]byte(seedState))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Components) != 2 || len(st.images()) != 3 || len(st.Purge) != 1 {
		t.Fatalf("parsed %+v", st)
	}
	for _, bad := range []string{
		strings.Replace(seedState, `"format": 1`, `"format": 2`, 1),
		strings.Replace(seedState, `"status": "installed"`, `"status": "rolled-back"`, 1),
		strings.Replace(seedState, `"origin": "sideload"`, `"origin": "usb"`, 1),
		strings.Replace(seedState, `"version": "1.0.0"`, `"version": "1.0"`, 1),
		strings.Replace(seedState, `"id": "6d51a23c-b2a8-4f05-850c-29f330db3b21"`, `"id": "0f5f608c-2165-4b49-8444-c48cee170dbd"`, 1),
		strings.Replace(seedState, `"ComponentId":"5e4b1b9c-2c0e-4d47-9a4c-7f3b1b8f1a20","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":{"Gpio"`, `"ComponentId":"1689d8b2-c835-2e27-27ad-e894d6d15fa9","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":{"Gpio"`, 1),
		strings.Replace(seedState, `"purge": ["7a3c6b1e`, `"purge": ["../../etc`, 1),
		strings.Replace(seedState, `"reason": "exit status 2"`, `"reason": "exit status 2", "extra": 1`, 1),
		strings.Replace(seedState, `"1689d8b2-c835-2e27-27ad-e894d6d15fa9": {`, `"../1689d8b2": {`, 1),
	} {
		if _, err := parseState([]byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// FuzzParseState: the state file parser never panics, and what it accepts survives a round
// trip through the writer unchanged.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(seedState))
	f.Add([]byte(`{"format":1,"components":{}}`))
	f.Add([]byte(`{"format":1,"components":{},"purge":["7a3c6b1e-0d2f-4e8a-9b7c-1d2e3f4a5b6c"]}`))
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState(data)
		if err != nil {
			return
		}
		out, err := marshalState(st)
		if err != nil {
			t.Fatalf("marshalling an accepted state: %v", err)
		}
		st2, err := parseState(out)
		if err != nil {
			t.Fatalf("re-parsing a written state: %v\n%s", err, out)
		}
		out2, err := marshalState(st2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the state (%v):\n%s\n%s", err, out, out2)
		}
	})
}
