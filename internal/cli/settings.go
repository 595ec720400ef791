package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/buildinfo"
	"github.com/rampart-iot/rampart/internal/ids"
)

// Environment variables the CLI reads.
const (
	envAddr   = "RAMPART_ADDR"
	envToken  = "RAMPART_TOKEN"
	envCACert = "RAMPART_CACERT"
	envTenant = "RAMPART_TENANT"
)

// Limits on files and input the CLI reads.
const (
	maxCACertBytes = 1 << 20
	maxTokenBytes  = 4 << 10
)

// globalFlags are the flags every command takes.
type globalFlags struct {
	output string // "table" or "json"
	tenant string
	addr   string
	cacert string
	token  string
}

// settings say which server to talk to, as whom, and in which tenant, after merging flags,
// environment and config file: flags win over the environment, which wins over the file.
type settings struct {
	addr   string
	token  string
	cacert string // path of a PEM file; empty means the system roots
	// tenant is a tenant name or ID from --tenant or RAMPART_TENANT, or an ID from the config.
	tenant           string
	tenantFromConfig bool
	tokenFromConfig  bool
	// savedAddr is the config file's address, whose token was not used if addr differs.
	savedAddr string
}

// resolveSettings merges flags, environment and config file. The config file's token and CA
// certificate are used only if the address is the config file's own.
func resolveSettings(f globalFlags, getenv func(string) string, cfg fileConfig) settings {
	s := settings{
		addr:      first(f.addr, getenv(envAddr), cfg.Addr),
		token:     first(f.token, getenv(envToken)),
		cacert:    first(f.cacert, getenv(envCACert)),
		tenant:    first(f.tenant, getenv(envTenant)),
		savedAddr: cfg.Addr,
	}
	saved := sameAddr(s.addr, cfg.Addr)
	if s.token == "" && saved && cfg.Token != "" {
		s.token, s.tokenFromConfig = cfg.Token, true
	}
	if s.cacert == "" && saved {
		s.cacert = cfg.CACert
	}
	if s.tenant == "" && s.addr != "" {
		if id := cfg.Tenants[normAddr(s.addr)]; id != "" {
			s.tenant, s.tenantFromConfig = id, true
		}
	}
	return s
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// config loads the config file.
func (a *app) config() (string, fileConfig, error) {
	path := configPath(a.sys)
	cfg, err := loadConfig(path)
	return path, cfg, err
}

// settings resolves the settings once per command. --token - reads the token from stdin.
func (a *app) settings() (settings, error) {
	if a.resolved != nil {
		return *a.resolved, nil
	}
	_, cfg, err := a.config()
	if err != nil {
		return settings{}, err
	}
	if a.flags.token == "-" {
		tok, err := readToken(a.sys.In)
		if err != nil {
			return settings{}, err
		}
		a.flags.token = tok
	}
	s := resolveSettings(a.flags, a.sys.Getenv, cfg)
	a.resolved = &s
	return s, nil
}

// readToken reads one token from r: its first line, trimmed.
func readToken(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxTokenBytes)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the token from stdin: %w", err)
	}
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", errors.New("no token on stdin")
	}
	return tok, nil
}

// newClient makes an API client for addr, trusting the PEM file cacert (or the system roots).
func newClient(addr, token, cacert string) (*client.Client, error) {
	cfg := client.Config{Addr: addr, Token: token, UserAgent: "rampart-cli/" + buildinfo.Version()}
	if cacert != "" {
		pem, err := readFileLimited(cacert, maxCACertBytes)
		if err != nil {
			return nil, fmt.Errorf("reading CA certificate: %w", err)
		}
		cfg.CACertPEM = pem
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// client returns a client for the resolved settings, or an error that says how to log in.
func (a *app) client() (*client.Client, error) {
	s, err := a.settings()
	if err != nil {
		return nil, err
	}
	if s.addr == "" {
		return nil, errors.New("no server address: run 'rampart login --addr URL --token TOKEN' or set " + envAddr)
	}
	if s.token == "" {
		if s.savedAddr != "" && !sameAddr(s.addr, s.savedAddr) {
			return nil, fmt.Errorf("not logged in to %s (the saved login is for %s): run 'rampart login --addr %s --token TOKEN' or set %s", s.addr, s.savedAddr, s.addr, envToken)
		}
		return nil, errors.New("not logged in: run 'rampart login --token TOKEN' or set " + envToken)
	}
	return newClient(s.addr, s.token, s.cacert)
}

// session is a client and the tenant that commands act in.
type session struct {
	c      *client.Client
	tenant string // tenant ID
}

// session connects and resolves the tenant, in this order: --tenant, RAMPART_TENANT, the
// tenant selected in the config file, the tenant the token is limited to, and the caller's only
// tenant.
func (a *app) session(ctx context.Context) (*session, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	s, _ := a.settings()
	switch {
	case s.tenant != "" && s.tenantFromConfig:
		return &session{c: c, tenant: s.tenant}, nil
	case s.tenant != "":
		t, err := findTenant(ctx, c, s.tenant)
		if err != nil {
			return nil, err
		}
		return &session{c: c, tenant: t.ID}, nil
	}
	me, err := c.Me(ctx)
	if err != nil {
		return nil, err
	}
	if me.TenantID != "" {
		return &session{c: c, tenant: me.TenantID}, nil
	}
	ts, err := c.AllTenants(ctx)
	if err != nil {
		return nil, err
	}
	switch len(ts) {
	case 0:
		return nil, errors.New("you have no role in any tenant")
	case 1:
		return &session{c: c, tenant: ts[0].ID}, nil
	}
	return nil, fmt.Errorf("you have roles in %d tenants: run 'rampart tenant select TENANT' or pass --tenant", len(ts))
}

// findTenant finds a tenant by name (case-insensitively) or ID among the caller's tenants. An
// ID that is not among them is looked up directly, for service administrators.
func findTenant(ctx context.Context, c *client.Client, ref string) (*v1.Tenant, error) {
	ts, err := c.AllTenants(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ts {
		if strings.EqualFold(ts[i].ID, ref) || strings.EqualFold(ts[i].Name, ref) {
			return &ts[i], nil
		}
	}
	if ids.LooksLikeUUID(ref) {
		t, err := c.GetTenant(ctx, strings.ToLower(ref))
		if err == nil || !client.HasCode(err, v1.CodeNotFound) {
			return t, err
		}
	}
	return nil, fmt.Errorf("tenant %q not found among your tenants: run 'rampart tenant list'", ref)
}

// absPath makes a path absolute, so that a saved path works from any directory.
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}
