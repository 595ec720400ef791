package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestConfigPath(t *testing.T) {
	tests := []struct {
		xdg, home, want string
	}{
		{"/xdg", "/home/ann", "/xdg/rampart/config.json"},
		{"", "/home/ann", "/home/ann/.config/rampart/config.json"},
		{"relative/dir", "/home/ann", "/home/ann/.config/rampart/config.json"}, // the XDG spec ignores relative paths
		{"", "", ""},
	}
	for _, tt := range tests {
		sys := &IO{HomeDir: tt.home, Getenv: func(k string) string {
			if k == "XDG_CONFIG_HOME" {
				return tt.xdg
			}
			return ""
		}}
		if got := configPath(sys); got != tt.want {
			t.Errorf("configPath(xdg %q, home %q) = %q, want %q", tt.xdg, tt.home, got, tt.want)
		}
	}
}

func TestConfigRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rampart", "config.json")
	c, err := loadConfig(path)
	if err != nil || !reflect.DeepEqual(c, fileConfig{}) {
		t.Fatalf("missing file: %+v, %v", c, err)
	}
	want := fileConfig{Addr: "https://a:1", Token: "tok", CACert: "/ca.pem", Tenants: map[string]string{"https://a:1": "t1"}}
	if err := saveConfig(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadConfig(path)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("loadConfig = %+v, %v; want %+v", got, err, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode = %v, want 0700", di.Mode().Perm())
	}

	// Overwriting keeps 0600 even over a file that was readable by others, and leaves no
	// temporary file behind.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	want.Token = ""
	if err := saveConfig(path, want); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten config mode = %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("config dir holds %v, want only config.json", names)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "tok") {
		t.Errorf("token still saved: %s", b)
	}
}

// TestSaveConfigFailureKeepsOld checks the atomic write: when the new file cannot replace the
// old one, the old one is intact and no temporary file is left.
func TestSaveConfigFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := saveConfig(path, fileConfig{Addr: "https://old"}); err != nil {
		t.Fatal(err)
	}
	// A directory where the file should be makes the rename fail.
	bad := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(bad, "config.json", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := saveConfig(filepath.Join(bad, "config.json"), fileConfig{Addr: "https://new"}); err == nil {
		t.Fatal("saveConfig over a directory: no error")
	}
	entries, _ := os.ReadDir(bad)
	if len(entries) != 1 {
		t.Errorf("temporary file left behind: %v", entries)
	}
	if c, err := loadConfig(path); err != nil || c.Addr != "https://old" {
		t.Errorf("old config = %+v, %v", c, err)
	}
}

func TestLoadConfigStrict(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		content, wantErr string
	}{
		{``, ""},
		{"  \n", ""},
		{`{"addr":"https://a"}`, ""},
		{`{"addr":"https://a","colour":"blue"}`, `unknown field "colour"`},
		{`{"addr":"https://a"} {}`, "data after"},
		{`{"addr":`, "unexpected EOF"},
		{`{"addr":1}`, "cannot unmarshal"},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, "c"+string(rune('a'+i))+".json")
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig(path)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.content, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: err = %v, want %q", tt.content, err, tt.wantErr)
		}
	}
}

func TestResolveSettings(t *testing.T) {
	cfg := fileConfig{
		Addr: "https://saved:8443", Token: "saved-token", CACert: "/saved-ca.pem",
		Tenants: map[string]string{"https://saved:8443": "saved-tenant", "https://env:1": "env-server-tenant"},
	}
	tests := []struct {
		name  string
		flags globalFlags
		env   map[string]string
		cfg   fileConfig
		want  settings
	}{
		{
			name: "config only",
			cfg:  cfg,
			want: settings{addr: "https://saved:8443", token: "saved-token", cacert: "/saved-ca.pem", tenant: "saved-tenant",
				tenantFromConfig: true, tokenFromConfig: true, savedAddr: "https://saved:8443"},
		},
		{
			name: "env overrides config",
			env:  map[string]string{envToken: "env-token", envCACert: "/env-ca.pem", envTenant: "Acme"},
			cfg:  cfg,
			want: settings{addr: "https://saved:8443", token: "env-token", cacert: "/env-ca.pem", tenant: "Acme", savedAddr: "https://saved:8443"},
		},
		{
			name:  "flags override env",
			flags: globalFlags{addr: "https://flag:1", token: "flag-token", cacert: "/flag-ca.pem", tenant: "Flag"},
			env:   map[string]string{envAddr: "https://env:1", envToken: "env-token", envCACert: "/env-ca.pem", envTenant: "Acme"},
			cfg:   cfg,
			want:  settings{addr: "https://flag:1", token: "flag-token", cacert: "/flag-ca.pem", tenant: "Flag", savedAddr: "https://saved:8443"},
		},
		{
			name: "saved token and CA stay with the saved address",
			env:  map[string]string{envAddr: "https://env:1"},
			cfg:  cfg,
			want: settings{addr: "https://env:1", tenant: "env-server-tenant", tenantFromConfig: true, savedAddr: "https://saved:8443"},
		},
		{
			name:  "same address in another spelling",
			flags: globalFlags{addr: "HTTPS://SAVED:8443/"},
			cfg:   cfg,
			want: settings{addr: "HTTPS://SAVED:8443/", token: "saved-token", cacert: "/saved-ca.pem", tenant: "saved-tenant",
				tenantFromConfig: true, tokenFromConfig: true, savedAddr: "https://saved:8443"},
		},
		{
			name: "nothing",
			want: settings{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolveSettings(tt.flags, func(k string) string { return tt.env[k] }, tt.cfg)
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	for in, want := range map[string]string{"abc\n": "abc", "  abc  \nignored\n": "abc", "abc": "abc"} {
		if got, err := readToken(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("readToken(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := readToken(strings.NewReader("\n")); err == nil {
		t.Error("empty stdin: no error")
	}
}
