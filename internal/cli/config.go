package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rampart-iot/rampart/internal/atomicfile"
)

// maxConfigBytes bounds the config file.
const maxConfigBytes = 1 << 20

// fileConfig is the config file, $XDG_CONFIG_HOME/rampart/config.json or
// ~/.config/rampart/config.json. Its token and CA certificate belong to its address: they are
// used only for that server, so that pointing the CLI at another server never sends it the saved
// token.
type fileConfig struct {
	Addr   string `json:"addr,omitempty"`
	Token  string `json:"token,omitempty"`
	CACert string `json:"cacert,omitempty"` // absolute path of a PEM file
	// Tenants maps a server address to the ID of the tenant selected there.
	Tenants map[string]string `json:"tenants,omitempty"`
}

// configPath returns the config file's path, or "" if neither XDG_CONFIG_HOME (absolute, as
// the XDG spec requires) nor a home directory is known.
func configPath(sys *IO) string {
	if dir := sys.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "rampart", "config.json")
	}
	if sys.HomeDir != "" {
		return filepath.Join(sys.HomeDir, ".config", "rampart", "config.json")
	}
	return ""
}

// loadConfig reads the config file strictly: unknown keys are errors. A missing file is an
// empty config.
func loadConfig(path string) (fileConfig, error) {
	var c fileConfig
	if path == "" {
		return c, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return c, fmt.Errorf("reading config: %w", err)
	}
	if len(b) > maxConfigBytes {
		return c, fmt.Errorf("config file %s is larger than %d bytes", path, maxConfigBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	if dec.More() {
		return c, fmt.Errorf("config file %s: data after the JSON object", path)
	}
	return c, nil
}

// saveConfig writes c to path atomically (see package atomicfile), readable by its owner only,
// since it holds a token.
func saveConfig(path string, c fileConfig) error {
	if path == "" {
		return errors.New("cannot find a place for the config file: set XDG_CONFIG_HOME or HOME")
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the config directory: %w", err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}

// sameAddr reports whether two server addresses name the same server, ignoring the case of
// scheme and host and a trailing slash.
func sameAddr(a, b string) bool {
	return a != "" && normAddr(a) == normAddr(b)
}

func normAddr(a string) string {
	a = strings.TrimRight(a, "/")
	scheme, rest, ok := strings.Cut(a, "://")
	if !ok {
		return a
	}
	host, path, _ := strings.Cut(rest, "/")
	if path != "" {
		path = "/" + path
	}
	return strings.ToLower(scheme) + "://" + strings.ToLower(host) + path
}
