package cli

import (
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/server"
	"github.com/rampart-iot/rampart/internal/serverconfig"
	"github.com/rampart-iot/rampart/internal/store"
)

const serverUsage = `Usage:
  rampart server -dev [--listen ADDR] [--data DIR]     development mode: throwaway tenant and token
  rampart server --config FILE [flags]                 production
  rampart server init --config FILE [--user NAME]      create the first service administrator
  rampart server export-root --config FILE --file F    take the service root CA's key offline into F
  rampart server import-root --config FILE --file F    bring it back (to make the next tenant CAs)

Flags override environment variables (RAMPART_LISTEN, RAMPART_DATA_DIR, RAMPART_STORE_BACKEND,
RAMPART_STORE_DSN, RAMPART_TLS_CERT_FILE, RAMPART_TLS_KEY_FILE, RAMPART_LOG_LEVEL,
RAMPART_LOG_FORMAT, RAMPART_ALLOW_SOFTWARE_ROOT_OF_TRUST, RAMPART_SHUTDOWN_TIMEOUT), which
override the config file.

Flags:
`

// newServerCmd is `rampart server`. It parses its own flags with the standard library so that
// the single-dash `-dev` form works as in Vault.
func newServerCmd(sys *IO) *cobra.Command {
	return &cobra.Command{
		Use:                "server [-dev] [--config FILE] [--listen ADDR] [--data DIR]",
		Short:              "Run the Rampart security service (-dev for a throwaway development service)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				switch args[0] {
				case "init":
					return runServerInit(cmd, args[1:], sys)
				case "export-root", "import-root":
					return runServerRootKey(cmd, args[0], args[1:], sys)
				}
			}
			return runServer(cmd, args, sys)
		},
	}
}

// serverFlags are the flags both server commands share.
type serverFlags struct {
	fs                                          *flag.FlagSet
	dev                                         bool
	config, listen, data, backend, dsn, tlsCert string
	tlsKey, logLevel, logFormat, user, tenant   string
}

func newServerFlags(name string, sys *IO) *serverFlags {
	f := &serverFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.config, "config", "", "JSON config `file`")
	fs.StringVar(&f.listen, "listen", "", "HTTPS listen `address` (default :8443; 127.0.0.1:8443 with -dev)")
	fs.StringVar(&f.data, "data", "", "data `directory` (default /var/lib/rampart; a throwaway directory with -dev)")
	fs.StringVar(&f.backend, "store", "", "store `backend`: sqlite or postgres")
	fs.StringVar(&f.dsn, "store-dsn", "", "store data source `name` (sqlite file, or postgres:// URL)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate PEM `file`")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS private key PEM `file`")
	fs.StringVar(&f.logLevel, "log-level", "", "log `level`: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "", "log `format`: text or json")
	return f
}

func (f *serverFlags) usage(w io.Writer) {
	fmt.Fprint(w, serverUsage)
	f.fs.SetOutput(w)
	f.fs.PrintDefaults()
	f.fs.SetOutput(io.Discard)
}

func (f *serverFlags) parse(cmd *cobra.Command, args []string, sys *IO) (done bool, err error) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.usage(sys.Out)
			return true, nil
		}
		return false, usagef(cmd, "%v", err)
	}
	if f.fs.NArg() > 0 {
		return false, usagef(cmd, "unexpected argument %q", f.fs.Arg(0))
	}
	return false, nil
}

// load builds the configuration: defaults, file, environment, flags; then validates it.
func (f *serverFlags) load(sys *IO) (serverconfig.Config, error) {
	cfg := serverconfig.Default(f.dev)
	if f.config != "" {
		if err := serverconfig.LoadFile(&cfg, f.config); err != nil {
			return cfg, err
		}
	}
	if err := serverconfig.ApplyEnv(&cfg, sys.Getenv); err != nil {
		return cfg, err
	}
	for _, o := range []struct {
		v   string
		dst *string
	}{{f.listen, &cfg.Listen}, {f.data, &cfg.DataDir}, {f.backend, &cfg.Store.Backend}, {f.dsn, &cfg.Store.DSN},
		{f.tlsCert, &cfg.TLS.CertFile}, {f.tlsKey, &cfg.TLS.KeyFile}, {f.logLevel, &cfg.Log.Level}, {f.logFormat, &cfg.Log.Format}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	return cfg, serverconfig.Validate(&cfg, store.Backends(), f.dev)
}

func newLogger(w io.Writer, c serverconfig.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServer(cmd *cobra.Command, args []string, sys *IO) error {
	f := newServerFlags("server", sys)
	f.fs.BoolVar(&f.dev, "dev", false, "development mode: throwaway data, a dev tenant, an admin token and generated TLS")
	if done, err := f.parse(cmd, args, sys); done || err != nil {
		return err
	}
	cfg, err := f.load(sys)
	if err != nil {
		return err
	}
	log := newLogger(sys.Err, cfg.Log)
	return server.Run(cmd.Context(), server.Options{Config: cfg, Dev: f.dev, Logger: log, Ready: func(i server.Info) {
		if !f.dev {
			return
		}
		fmt.Fprintf(sys.Out, "export RAMPART_ADDR=%s\nexport RAMPART_TOKEN=%s\nexport RAMPART_CACERT=%s\n",
			shellQuote(i.URL), shellQuote(i.AdminToken), shellQuote(i.CACertFile))
		if i.ConsoleURL != "" {
			fmt.Fprintf(sys.Out, "# web console: %s (log in with the RAMPART_TOKEN above)\n", i.ConsoleURL)
		}
		log.Info("dev mode ready: eval the export lines above to use the CLI; Ctrl-C stops the server",
			"tenant", server.DevTenant, "user", server.DevUser, "data", i.DataDir)
	}})
}

// runServerInit creates the first service administrator in a production store and prints its
// token once.
func runServerInit(cmd *cobra.Command, args []string, sys *IO) error {
	f := newServerFlags("server init", sys)
	f.fs.StringVar(&f.user, "user", "admin", "`name` of the service administrator to create")
	f.fs.StringVar(&f.tenant, "tenant", "", "also create a tenant with this `name`, administered by the user")
	if done, err := f.parse(cmd, args, sys); done || err != nil {
		return err
	}
	cfg, err := f.load(sys)
	if err != nil {
		// init does not serve, so missing TLS files are no obstacle.
		var ce *serverconfig.Error
		if !errors.As(err, &ce) || !onlyTLSProblems(ce) {
			return err
		}
	}
	st, err := server.OpenStore(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	m := manage.New(manage.Config{Store: st, Logger: newLogger(sys.Err, cfg.Log)})
	res, err := m.Bootstrap(cmd.Context(), manage.Bootstrap{UserName: f.user, TenantName: f.tenant, TokenTTL: manage.DefaultTokenTTL})
	if err != nil {
		return err
	}
	fmt.Fprintf(sys.Out, "service administrator %s is ready; this token is shown once and expires %s:\n%s\n",
		res.User.Name, res.Token.ExpiresAt.Format(time.RFC3339), res.Token.Secret)
	return nil
}

// runServerRootKey takes the service root CA's private key offline, or brings it back. Run it
// with the service stopped or not: the store serializes the change.
func runServerRootKey(cmd *cobra.Command, verb string, args []string, sys *IO) error {
	f := newServerFlags("server "+verb, sys)
	var file string
	f.fs.StringVar(&file, "file", "", "PEM `file` of the root key (written mode 0600 by export-root)")
	if done, err := f.parse(cmd, args, sys); done || err != nil {
		return err
	}
	if file == "" {
		return usagef(cmd, "--file is required")
	}
	cfg, err := f.load(sys)
	if err != nil {
		var ce *serverconfig.Error
		if !errors.As(err, &ce) || !onlyTLSProblems(ce) {
			return err
		}
	}
	st, err := server.OpenStore(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	authority, _, err := server.OpenCA(cfg, st, nil, nil)
	if err != nil {
		return err
	}
	if verb == "export-root" {
		if _, err := os.Stat(file); err == nil {
			return fmt.Errorf("%s exists; refusing to overwrite a key file", file)
		}
		if err := authority.EnsureRoot(cmd.Context()); err != nil {
			return err
		}
		err := authority.ExportRoot(cmd.Context(), func(certPEM, keyPEM []byte) error {
			return atomicfile.WriteFile(file, append(append([]byte{}, certPEM...), keyPEM...), 0o600)
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(sys.Out, "the service root key is now only in %s; keep it offline. Tenants keep their current CAs; bring it back with import-root before they need the next ones.\n", file)
		return err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var keyPEM []byte
	for rest := b; len(keyPEM) == 0; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return fmt.Errorf("%s holds no PEM private key", file)
		}
		if strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			keyPEM = pem.EncodeToMemory(blk)
		}
	}
	if err := authority.ImportRoot(cmd.Context(), keyPEM); err != nil {
		return err
	}
	_, err = fmt.Fprintln(sys.Out, "the service root key is back in the store, sealed")
	return err
}

func onlyTLSProblems(e *serverconfig.Error) bool {
	for _, p := range e.Problems {
		if !strings.HasPrefix(p, "tls") {
			return false
		}
	}
	return true
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/:._-+=@,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
