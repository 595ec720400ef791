package httpapi_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/manifest"
)

// appPackage builds a development-signed application package whose manifest claims gpio.
func appPackage(t testing.TB, componentID, name, version string, gpio int) []byte {
	t.Helper()
	dir := t.TempDir()
	doc := fmt.Sprintf(`{"SchemaVersion":1,"Name":%q,"ComponentId":%q,"EntryPoint":"/bin/app","CmdArgs":[],
		"Capabilities":{"Gpio":[%d]},"ApplicationType":"Default"}`, name, componentID, gpio)
	if err := os.WriteFile(filepath.Join(dir, "app_manifest.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "app"), []byte("#!/bin/sh\necho "+name+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ReadFile(filepath.Join(dir, "app_manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	meta := &imagepkg.Metadata{Version: imagepkg.MetadataVersion, ComponentID: m.ComponentId, Kind: imagepkg.KindApplication,
		Name: name, ImageVersion: version, CreatedAt: time.Now().UTC().Truncate(time.Second), Manifest: m, Development: true}
	if meta.ImageID, err = imagepkg.NewUUID(rand.Reader); err != nil {
		t.Fatal(err)
	}
	var payload bytes.Buffer
	if meta.Payload, err = imagepkg.PackDir(&payload, dir); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := imagepkg.Write(&out, meta, &payload, imagepkg.DevelopmentKey()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func newComponent(t testing.TB) string {
	id, err := imagepkg.NewUUID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) upload(token, tenant string, pkg []byte) response {
	return e.doRaw(token, "POST", "/v1/tenants/"+tenant+"/images", pkg, "application/octet-stream")
}

func TestImagesAndDeployments(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		admin := e.srv.AdminToken
		own := e.fixture(e.srv.TenantID, admin)
		base := "/v1/tenants/" + own.id
		comp := newComponent(t)
		pkg1 := appPackage(t, comp, "blink", "1.0.0", 4)

		// Upload: validated, countersigned, stored.
		r := e.upload(admin, own.id, pkg1)
		if r.status != 201 {
			t.Fatalf("upload: %d %s", r.status, r.body)
		}
		var img v1.Image
		mustJSON(t, r.body, &img)
		if img.ComponentID != comp || img.Kind != "application" || img.Version != "1.0.0" || !img.Development || img.PackageSize <= int64(len(pkg1)) {
			t.Fatalf("image %+v", img)
		}
		// The stored package carries the tenant's signature besides the developer's.
		dl := e.do(admin, "GET", base+"/images/"+img.ID+"/package", nil)
		if dl.status != 200 || int64(len(dl.body)) != img.PackageSize {
			t.Fatalf("download: %d, %d bytes", dl.status, len(dl.body))
		}
		p, err := imagepkg.Open(bytes.NewReader(dl.body), int64(len(dl.body)))
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Signatures()) != 2 {
			t.Fatalf("signatures %+v", p.Signatures())
		}
		// Range requests work (devices resume downloads).
		rr := e.doRange(admin, base+"/images/"+img.ID+"/package", "bytes=8-15")
		if rr.status != 206 || !bytes.Equal(rr.body, dl.body[8:16]) {
			t.Fatalf("range: %d %q", rr.status, rr.body)
		}

		// Refusals change nothing.
		before := snapshot(t, e.srv.Store)
		for name, c := range map[string]struct {
			body   []byte
			ct     string
			status int
			code   string
		}{
			"same image again":   {pkg1, "application/octet-stream", 409, v1.CodeConflict},
			"not a package":      {[]byte("hello"), "application/octet-stream", 422, v1.CodeValidation},
			"tampered payload":   {flip(pkg1, len(pkg1)-5), "application/octet-stream", 422, v1.CodeValidation},
			"tampered metadata":  {flip(pkg1, 40), "application/octet-stream", 422, v1.CodeValidation},
			"wrong content type": {pkg1, "application/json", 415, v1.CodeUnsupportedMedia},
		} {
			r := e.doRaw(admin, "POST", base+"/images", c.body, c.ct)
			if r.status != c.status || r.apiError().Code != c.code {
				t.Errorf("%s: %d %s", name, r.status, r.body)
			}
		}
		if snapshot(t, e.srv.Store) != before {
			t.Error("a refused upload changed state")
		}
		// Another tenant cannot take over the component.
		other := e.newTenant("Rival Images")
		r = e.upload(other.admin, other.id, appPackage(t, comp, "evil", "9.0.0", 5))
		if r.status != 409 || !strings.Contains(r.apiError().Message, "another tenant") {
			t.Fatalf("component takeover: %d %s", r.status, r.body)
		}
		// A Reader cannot upload.
		reader := e.user(own, "ria", "Reader")
		if r := e.upload(reader, own.id, appPackage(t, newComponent(t), "x", "1.0.0", 6)); r.status != 403 {
			t.Fatalf("reader upload: %d", r.status)
		}

		// Deployments: v1, then v2 replaces it as current; history is kept.
		img2 := uploadOK(t, e, admin, own.id, appPackage(t, comp, "blink", "2.0.0", 4))
		var d1, d2 v1.Deployment
		e.must(admin, "POST", base+"/device-groups/"+own.group+"/deployments", v1.DeploymentCreate{ImageIDs: []string{img.ID}}, 201, &d1)
		e.must(admin, "POST", base+"/device-groups/"+own.group+"/deployments", v1.DeploymentCreate{ImageIDs: []string{img2.ID}}, 201, &d2)
		var hist v1.List[v1.Deployment]
		e.must(admin, "GET", base+"/deployments?device_group_id="+own.group, nil, 200, &hist)
		if len(hist.Items) != 2 || hist.Items[0].ID != d2.ID || !hist.Items[0].Current || hist.Items[1].Current {
			t.Fatalf("history %+v", hist.Items)
		}
		var got v1.Deployment
		e.must(admin, "GET", base+"/deployments/"+d1.ID, nil, 200, &got)
		if got.Current || len(got.ImageIDs) != 1 || got.ImageIDs[0] != img.ID {
			t.Fatalf("old deployment %+v", got)
		}
		// Two apps that claim the same GPIO are refused, naming both; so are two images of one
		// component, another tenant's image, and unknown images.
		clash := uploadOK(t, e, admin, own.id, appPackage(t, newComponent(t), "buzzer", "1.0.0", 4))
		r = e.do(admin, "POST", base+"/device-groups/"+own.group+"/deployments", v1.DeploymentCreate{ImageIDs: []string{img2.ID, clash.ID}})
		if r.status != 409 || !strings.Contains(string(r.body), "blink") || !strings.Contains(string(r.body), "buzzer") {
			t.Fatalf("peripheral clash: %d %s", r.status, r.body)
		}
		r = e.do(admin, "POST", base+"/device-groups/"+own.group+"/deployments", v1.DeploymentCreate{ImageIDs: []string{img.ID, img2.ID}})
		if r.status != 409 || !strings.Contains(string(r.body), "same component") {
			t.Fatalf("same component: %d %s", r.status, r.body)
		}
		theirs := uploadOK(t, e, other.admin, other.id, appPackage(t, newComponent(t), "theirs", "1.0.0", 7))
		if r := e.do(admin, "POST", base+"/device-groups/"+own.group+"/deployments", v1.DeploymentCreate{ImageIDs: []string{theirs.ID}}); r.status != 404 {
			t.Fatalf("another tenant's image: %d %s", r.status, r.body)
		}
		if r := e.do(admin, "POST", base+"/device-groups/"+own.group+"/deployments", v1.DeploymentCreate{}); r.status != 422 {
			t.Fatalf("no images: %d %s", r.status, r.body)
		}
		e.must(admin, "GET", base+"/deployments?device_group_id="+own.group, nil, 200, &hist)
		if len(hist.Items) != 2 {
			t.Fatalf("refused deployments were recorded: %d", len(hist.Items))
		}
	})
}

func uploadOK(t *testing.T, e *env, token, tenant string, pkg []byte) v1.Image {
	t.Helper()
	r := e.upload(token, tenant, pkg)
	if r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var img v1.Image
	mustJSON(t, r.body, &img)
	return img
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}
