package console_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

const hostile = `<script>alert(1)</script>`

// browser is an HTTP client with a cookie jar that does not follow redirects, so tests see
// every 303 and every Set-Cookie.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

type page struct {
	status   int
	body     string
	location string
	cookies  []*http.Cookie
}

func newBrowser(t *testing.T, srv *servertest.Server) *browser {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CACertPEM)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, base: srv.URL, c: c}
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), cookies: resp.Cookies()}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form; headers are extra request headers as name, value pairs.
func (b *browser) post(path string, form url.Values, headers ...string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a rendered page's forms.
func csrf(t *testing.T, p page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF field on the page (status %d):\n%s", p.status, p.body)
	}
	return m[1]
}

// login logs in with token and returns the session's CSRF token.
func (b *browser) login(token string) string {
	b.t.Helper()
	lp := b.get("/console/login")
	if lp.status != 200 {
		b.t.Fatalf("login page: %d %s", lp.status, lp.body)
	}
	r := b.post("/console/login", url.Values{"csrf": {csrf(b.t, lp)}, "token": {token}})
	if r.status != http.StatusSeeOther {
		b.t.Fatalf("login: %d %s", r.status, r.body)
	}
	return b.sessionCSRF()
}

// sessionCSRF reads the session's CSRF token from the logout form of the home page.
func (b *browser) sessionCSRF() string {
	b.t.Helper()
	home := b.get("/console/")
	if home.status == http.StatusSeeOther {
		home = b.get(home.location)
	}
	if home.status != 200 {
		b.t.Fatalf("console home: %d %s", home.status, home.body)
	}
	return csrf(b.t, home)
}

func mustStatus(t *testing.T, what string, p page, want int) {
	t.Helper()
	if p.status != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, p.status, want, p.body)
	}
}

// fixture is a tenant with a product, its default groups, an attested device in Field Test,
// an application image and a deployment.
type fixture struct {
	srv     *servertest.Server
	admin   *client.Client
	tenant  string
	product v1.Product
	group   v1.DeviceGroup // Field Test
	device  *servertest.Device
	image   *v1.Image
	deploy  *v1.Deployment
}

func newFixture(t *testing.T, srv *servertest.Server) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{srv: srv, admin: srv.Client(t, srv.AdminToken), tenant: srv.TenantID}
	prod, err := f.admin.CreateProduct(ctx, f.tenant, v1.ProductCreate{Name: "Thermostat", Description: "desc " + hostile})
	if err != nil {
		t.Fatal(err)
	}
	f.product = *prod
	groups, err := f.admin.AllProductDeviceGroups(ctx, f.tenant, prod.ID, client.DeviceGroupListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Name == "Field Test" {
			f.group = g
		}
	}
	if f.group.ID == "" {
		t.Fatalf("no Field Test group among %v", groups)
	}
	f.device = srv.AttestedDevice(t, f.admin, f.tenant, f.group.ID)
	pkg := imagepkgtest.Application(t, imagepkgtest.App{Name: "blink", Version: "1.0.0"})
	if f.image, err = f.admin.AddImage(ctx, f.tenant, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil); err != nil {
		t.Fatal(err)
	}
	if f.deploy, err = f.admin.CreateDeployment(ctx, f.tenant, f.group.ID, v1.DeploymentCreate{ImageIDs: []string{f.image.ID}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// addHostileRecords writes, straight into the store, records that hold hostile strings the
// API's validation would refuse but a device or an old release might have left: a product
// name, a failed attestation's message, and a check-in report.
func (f *fixture) addHostileRecords(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	gen := &ids.Generator{Now: time.Now, Rand: rand.Reader}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := f.srv.Store.CreateProduct(ctx, store.Product{ID: gen.MustNew(), TenantID: f.tenant, Name: hostile, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Store.RecordAttestation(ctx, store.Attestation{ID: gen.MustNew(), TenantID: f.tenant, DeviceID: f.device.ID, Time: now,
		Result: store.AttestationFail, Reason: "pcr_mismatch", Message: "event log " + hostile}); err != nil {
		t.Fatal(err)
	}
	report, _ := json.Marshal(v1.CheckIn{AgentVersion: hostile, Images: []v1.InstalledImage{{ComponentID: f.image.ComponentID,
		ImageID: f.image.ID, Kind: "application", Version: "1.0.0", State: v1.ImageCrashed, Restarts: 3, LastError: "exit " + hostile}},
		OS: &v1.OSSlots{Active: "a", Booted: "a", CommittedVersion: "1.0.0", Slots: []v1.OSSlot{{Name: "a", Version: "1.0.0", Digest: strings.Repeat("ab", 32)}}}})
	if err := f.srv.Store.PutDeviceReport(ctx, store.DeviceReport{TenantID: f.tenant, DeviceID: f.device.ID, Report: report, CheckedInAt: now}); err != nil {
		t.Fatal(err)
	}
}

// reader adds a Reader to the tenant and returns its token (limited to the tenant).
func (f *fixture) reader(t *testing.T, name string) string {
	t.Helper()
	return f.member(t, name, "Reader")
}

// member gives a user a role in the tenant and returns a token for it (limited to the tenant).
func (f *fixture) member(t *testing.T, name, role string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := f.admin.AddRole(ctx, f.tenant, v1.RoleAdd{User: name, Role: role}); err != nil {
		t.Fatal(err)
	}
	tok, err := f.admin.CreateUserToken(ctx, f.tenant, name, v1.TokenCreate{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}

func (f *fixture) deviceDisabled(t *testing.T) bool {
	t.Helper()
	d, err := f.admin.GetDevice(t.Context(), f.tenant, f.device.ID)
	if err != nil {
		t.Fatal(err)
	}
	return d.Disabled
}

// audit returns the tenant's audit entries for an action, newest first.
func (f *fixture) audit(t *testing.T, action string) []v1.AuditEntry {
	t.Helper()
	es, err := f.admin.AllAudit(t.Context(), f.tenant, client.AuditListOptions{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return es
}
