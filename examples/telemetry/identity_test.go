package main

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseIdentity(t *testing.T) {
	const dev = "2bfa7e4eed69c2152bc30b81b42eaf557ebb53911fcadcb740d2b6147af1f507"
	good := "spiffe://0f3c2a4e-8d1b-4a6f-9c2e-5b7d1e3f4a6b/device/" + dev + "/app/c6cfa543-1019-4ac9-9081-c9ee9ce89197"
	u, _ := url.Parse(good)
	id, err := parseIdentity(u)
	if err != nil || id.device != dev || id.component != "c6cfa543-1019-4ac9-9081-c9ee9ce89197" || id.tenant != "0f3c2a4e-8d1b-4a6f-9c2e-5b7d1e3f4a6b" {
		t.Fatalf("%s: %+v %v", good, id, err)
	}
	for _, bad := range []string{
		"https://t/device/" + dev + "/app/x",    // not spiffe
		"spiffe://t/device/" + dev,              // the agent's, not an app's
		"spiffe:///device/" + dev + "/app/x",    // no tenant
		"spiffe://t/device/a+b/app/x",           // a wildcard in the topic
		"spiffe://t/device/a%2Fb/app/x",         // a topic separator
		"spiffe://t/device/" + dev + "/app/x?q", // a query
		"spiffe://t/devices/" + dev + "/app/x",
	} {
		u, err := url.Parse(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseIdentity(u); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// FuzzParseIdentity: any URI either fails or gives a device ID fit for a topic level.
func FuzzParseIdentity(f *testing.F) {
	f.Add("spiffe://t/device/abc/app/c6cfa543-1019-4ac9-9081-c9ee9ce89197")
	f.Add("spiffe://t/device/a%2Fb/app/x")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		id, err := parseIdentity(u)
		if err != nil {
			return
		}
		if id.device == "" || strings.ContainsAny(id.device, "/+#\x00") || id.component == "" || id.tenant == "" {
			t.Fatalf("%q: %+v", s, id)
		}
	})
}
