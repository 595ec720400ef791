package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/devpki"
)

// syncBuffer is a bytes buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServerCmd runs `rampart server ARGS` in-process until the test ends and returns what
// it printed once ready.
func startServerCmd(t *testing.T, env map[string]string, args ...string) (stdout *syncBuffer, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		code := Run(ctx, append([]string{"server"}, args...), IO{Out: io.MultiWriter(stdout, pw), Err: stderr,
			Getenv: func(k string) string { return env[k] }, HomeDir: t.TempDir()})
		pw.Close()
		done <- code
	}()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		n := 0
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "export RAMPART_") {
				n++
				if n == 3 {
					ready <- true
				}
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cancel()
			t.Fatalf("server exited before it was ready: %s", stderr.String())
		}
	case <-time.After(time.Minute):
		cancel()
		t.Fatalf("server not ready within a minute: %s", stderr.String())
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

func parseExports(t *testing.T, out string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export ") {
			env[k] = strings.Trim(v, "'")
		}
	}
	for _, k := range []string{envAddr, envToken, envCACert} {
		if env[k] == "" {
			t.Fatalf("no export line for %s in %q", k, out)
		}
	}
	return env
}

// TestServerDevPrintsExportsThatWork runs the README's first command and uses what it prints.
func TestServerDevPrintsExportsThatWork(t *testing.T) {
	data := t.TempDir()
	out, stderr, stop := startServerCmd(t, nil, "-dev", "--listen", "127.0.0.1:0", "--data", data)
	env := parseExports(t, out.String())
	if !strings.HasPrefix(env[envAddr], "https://127.0.0.1:") {
		t.Fatalf("RAMPART_ADDR %q", env[envAddr])
	}
	r := newRunner(t, env)
	if res := r.run(t, "product", "create", "--name", "Kiosk"); res.code != 0 {
		t.Fatalf("product create: %s", res.err)
	}
	res := r.run(t, "device-group", "list", "--product", "Kiosk", "-o", "json")
	var groups []map[string]any
	if err := json.Unmarshal([]byte(res.out), &groups); err != nil || len(groups) != 5 {
		t.Fatalf("groups: %v %s", err, res.out)
	}
	if code := stop(); code != 0 {
		t.Fatalf("server exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stopped") {
		t.Errorf("no clean shutdown in the log: %s", stderr.String())
	}
	// Restarting on the same data keeps the tenant's data and issues a new token.
	out2, _, _ := startServerCmd(t, nil, "-dev", "--listen", "127.0.0.1:0", "--data", data)
	env2 := parseExports(t, out2.String())
	if env2[envToken] == env[envToken] {
		t.Error("restart reused the old token")
	}
	r2 := newRunner(t, env2)
	if res := r2.run(t, "product", "show", "Kiosk"); res.code != 0 {
		t.Fatalf("product lost across restart: %s", res.err)
	}
}

func TestServerProductionConfig(t *testing.T) {
	dir := t.TempDir()
	files, err := devpki.Ensure(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "rampart.json")
	doc := `{"listen":"127.0.0.1:0","data_dir":"` + filepath.Join(dir, "data") + `","tls":{"cert_file":"` + files.ServerCert +
		`","key_file":"` + files.ServerKey + `"},"log":{"format":"json"}}`
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	// init prints a token once.
	r := newRunner(t, nil)
	res := r.run(t, "server", "init", "--config", cfg, "--user", "ops", "--tenant", "Acme")
	if res.code != 0 || !strings.Contains(res.out, "rpt_") {
		t.Fatalf("init: %d %s %s", res.code, res.out, res.err)
	}
	token := res.out[strings.Index(res.out, "rpt_"):]
	token = strings.TrimSpace(token)

	// The service root's key goes offline into a file, and comes back.
	rootKey := filepath.Join(dir, "root-key.pem")
	if res := r.run(t, "server", "export-root", "--config", cfg, "--file", rootKey); res.code != 0 {
		t.Fatalf("export-root: %s", res.err)
	}
	if st, err := os.Stat(rootKey); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("exported key file: %v %v", st, err)
	}
	if res := r.run(t, "server", "export-root", "--config", cfg, "--file", rootKey); res.code != 1 || !strings.Contains(res.err, "refusing to overwrite") {
		t.Fatalf("second export: %d %s", res.code, res.err)
	}
	if res := r.run(t, "server", "import-root", "--config", cfg, "--file", rootKey); res.code != 0 {
		t.Fatalf("import-root: %s", res.err)
	}

	// Production mode prints no exports, so find the address in the JSON log.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"server", "--config", cfg}, IO{Out: io.Discard, Err: logs, Getenv: func(string) string { return "" }})
	}()
	var url string
	for deadline := time.Now().Add(time.Minute); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var entry struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.URL != "" {
				url = entry.URL
			}
		}
	}
	if url == "" {
		t.Fatalf("server did not log its URL: %s", logs.String())
	}
	ca, _ := os.ReadFile(files.CACert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	for _, c := range []struct {
		path string
		want int
	}{{"/healthz", 200}, {"/readyz", 200}, {"/v1/openapi.json", 200}, {"/v1/me", 401}, {"/metrics", 200}} {
		path, want := c.path, c.want
		resp, err := hc.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if path == "/metrics" && !strings.Contains(string(body), "rampart_api_requests_total") {
			t.Errorf("metrics lack API counters")
		}
	}
	// Plain HTTP is refused: the service speaks only TLS.
	if resp, err := http.Get(strings.Replace(url, "https://", "http://", 1) + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served")
		}
		resp.Body.Close()
	}
	// The init token works and names the tenant init made.
	rr := newRunner(t, map[string]string{envAddr: url, envToken: token, envCACert: files.CACert})
	if res := rr.run(t, "tenant", "list"); res.code != 0 || !strings.Contains(res.out, "Acme") {
		t.Fatalf("tenant list: %s %s", res.out, res.err)
	}
	// Production policy refuses software-rooted devices.
	rec, _ := writeRecords(t, 1, false)
	if res := rr.run(t, "device", "claim", "--enrollment", rec); res.code != 1 || !strings.Contains(res.err, "software root of trust") {
		t.Fatalf("software device claimed in production: %d %s", res.code, res.err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
}

func TestServerConfigErrorsAreReportedAtOnce(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(cfg, []byte(`{"listen":"nowhere","data_dir":"rel","store":{"backend":"oracle"},"colour":"blue"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, nil)
	res := r.run(t, "server", "--config", cfg)
	if res.code != 1 || !strings.Contains(res.err, "colour") {
		t.Fatalf("unknown key: %d %s", res.code, res.err)
	}
	if err := os.WriteFile(cfg, []byte(`{"listen":"nowhere","data_dir":"rel","store":{"backend":"oracle"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res = r.run(t, "server", "--config", cfg)
	line := res.oneErrorLine(t)
	for _, want := range []string{"listen", "data_dir", "store.backend", "tls"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q not reported: %s", want, line)
		}
	}
	if res := r.run(t, "server", "--bogus"); res.code != 2 {
		t.Errorf("unknown flag: exit %d", res.code)
	}
	if res := r.run(t, "server", "-h"); res.code != 0 || !strings.Contains(res.out, "-dev") {
		t.Errorf("help: %d %s", res.code, res.out)
	}
	env := map[string]string{"RAMPART_LOG_LEVEL": "chatty"}
	if res := newRunner(t, env).run(t, "server", "-dev", "--listen", "127.0.0.1:0"); res.code != 1 || !strings.Contains(res.err, "log.level") {
		t.Errorf("env override not validated: %d %s", res.code, res.err)
	}
}

func TestServerRegistersOSReleasesFromItsConfig(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "releases.json")
	digest := strings.Repeat("ab", 32)
	doc := `{"releases":[{"tenant":"dev","version":"2.0","measurements":{"os-bundle":"` + digest + `"}}]}`
	if err := os.WriteFile(rel, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RAMPART_OS_RELEASES_FILE": rel}
	out, _, stop := startServerCmd(t, env, "-dev", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	r := newRunner(t, parseExports(t, out.String()))
	res := r.run(t, "os-release", "list", "-o", "json")
	if res.code != 0 || !strings.Contains(res.out, `"2.0"`) || !strings.Contains(res.out, digest) {
		t.Fatalf("releases: %d %s %s", res.code, res.out, res.err)
	}
	stop()
	// Restarting with the same file keeps one release; other measurements for it are refused.
	out2, _, stop2 := startServerCmd(t, env, "-dev", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	r2 := newRunner(t, parseExports(t, out2.String()))
	if res := r2.run(t, "os-release", "list", "-o", "json"); strings.Count(res.out, `"2.0"`) != 1 {
		t.Fatalf("after restart: %s", res.out)
	}
	stop2()
	if err := os.WriteFile(rel, []byte(strings.Replace(doc, digest, strings.Repeat("cd", 32), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	res = newRunner(t, env).run(t, "server", "-dev", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	if res.code != 1 || !strings.Contains(res.err, "other measurements") {
		t.Fatalf("conflicting release: %d %s", res.code, res.err)
	}
}
