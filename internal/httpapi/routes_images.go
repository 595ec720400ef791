package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/updatemeta"
)

// ImageBodyLimit bounds an image upload.
const ImageBodyLimit = manage.MaxImageSize + imagepkg.MaxEnvelopeSize + 64

// content is a response served with http.ServeContent (Range requests, conditional GETs).
type content struct {
	name    string
	modTime time.Time
	r       io.ReadSeekCloser
}

// imageRoutes are the images and deployments of renewable security.
func imageRoutes() []route {
	return []route{
		{method: "POST", path: tenantPath + "/images", op: "addImage",
			summary: "Upload an image package (application/octet-stream). The service validates it, countersigns it with the tenant's key and stores it.",
			action:  authz.ImageAdd, rawBody: true, out: v1.Image{}, status: 201, limit: ImageBodyLimit, handle: addImage},
		{method: "GET", path: tenantPath + "/images", op: "listImages", summary: "The tenant's images.",
			action: authz.ImageRead, out: v1.List[v1.Image]{}, status: 200, list: true,
			query: []queryParam{{"component_id", "string", "only images of this component"}, {"kind", "string", "application, os or board-config"}}, handle: listImages},
		{method: "GET", path: tenantPath + "/images/{image}", op: "getImage", summary: "An image.",
			action: authz.ImageRead, out: v1.Image{}, status: 200, handle: getImage},
		{method: "GET", path: tenantPath + "/images/{image}/package", op: "downloadImage",
			summary: "The countersigned image package (application/octet-stream; Range requests supported).",
			action:  authz.ImageRead, status: 200, produces: "application/octet-stream", handle: downloadImage},
		{method: "POST", path: tenantPath + "/device-groups/{group}/deployments", op: "createDeployment",
			summary: "Make a new deployment the group's current one; the previous one stays in its history.",
			action:  authz.DeploymentCreate, in: v1.DeploymentCreate{}, out: v1.Deployment{}, status: 201, handle: createDeployment},
		{method: "POST", path: tenantPath + "/update-keys/root/export", op: "exportUpdateRootKey",
			summary: "Take one of the tenant's update-metadata root keys offline: the response holds the private key, which the service no longer has. Until a threshold of root keys is online again, no group can get its first deployment and roots are not renewed.",
			action:  authz.UpdateKeyManage, out: v1.UpdateRootKey{}, status: 200,
			query: []queryParam{{"key_id", "string", "the root key to export (64 lower-case hex digits); needed when more than one is online"}}, handle: exportUpdateRoot},
		{method: "POST", path: tenantPath + "/update-keys/root/import", op: "importUpdateRootKey",
			summary: "Bring one of the tenant's exported update-metadata root keys back online.",
			action:  authz.UpdateKeyManage, in: v1.UpdateRootKey{}, status: 204, handle: importUpdateRoot},
		{method: "POST", path: tenantPath + "/update-keys/root/rotate", op: "rotateUpdateRootKey",
			summary: "Replace the tenant's update-metadata root keys with new_keys new ones, threshold of which must sign a root: every repository gets a root version signed by a threshold of the old keys and of the new, which devices follow; the old keys are revoked. key_pem and key_pems are current keys that are offline, signed with once and not kept; below the current threshold nothing changes (409).",
			action:  authz.UpdateKeyManage, in: v1.UpdateRootRotate{}, out: v1.UpdateRootRotation{}, status: 200, handle: rotateUpdateRoot},
		{method: "POST", path: tenantPath + "/update-keys/root/prepare", op: "prepareUpdateRootRotation",
			summary: "Prepare a rotation whose root keys never reach the service: root N+1 of every repository, listing the new keys (public halves) and threshold, unsigned, for the holders of the current and new keys to sign offline (rampart keys root-sign). Changes nothing.",
			action:  authz.UpdateKeyManage, in: v1.UpdateRootPrepare{}, out: v1.UpdateRootPrepared{}, status: 200, handle: prepareUpdateRoot},
		{method: "POST", path: tenantPath + "/update-keys/root/complete", op: "completeUpdateRootRotation",
			summary: "Publish a prepared rotation with the holders' detached signatures: each root needs a threshold of the current and of the new root keys (409 otherwise, naming how many signed and were needed; nothing changes). The current keys no new root lists are revoked; the new keys are recorded offline.",
			action:  authz.UpdateKeyManage, in: v1.UpdateRootComplete{}, out: v1.UpdateRootRotation{}, status: 200, limit: updatemeta.MaxCompleteRequestBytes, handle: completeUpdateRoot},
		{method: "GET", path: tenantPath + "/update-keys/root", op: "getUpdateRootStatus",
			summary: "The tenant's update-metadata root keys (each online or offline), their threshold, and when each repository's root expires. The service renews roots itself while a threshold of the keys is online; otherwise a root inside its renewal window must be renewed with rotate-root before it expires.",
			action:  authz.ImageRead, out: v1.UpdateRootStatus{}, status: 200, handle: updateRootStatus},
		{method: "GET", path: tenantPath + "/update-keys/root/metadata", op: "getImagesRootMetadata",
			summary: "The first root metadata (1.root.json) of the tenant's image repository, for a device image to ship: a device given it (rampart-agent run --update-root) trusts that root on first contact instead of the service's answer.",
			action:  authz.ImageRead, status: 200, produces: "application/json", handle: imagesRootMetadata},
		{method: "GET", path: tenantPath + "/deployments", op: "listDeployments", summary: "The tenant's deployments, newest first.",
			action: authz.DeploymentRead, out: v1.List[v1.Deployment]{}, status: 200, list: true,
			query: []queryParam{{"device_group_id", "string", "only this group's deployments"}}, handle: listDeployments},
		{method: "GET", path: tenantPath + "/deployments/{deployment}", op: "getDeployment", summary: "A deployment.",
			action: authz.DeploymentRead, out: v1.Deployment{}, status: 200, handle: getDeployment},
	}
}

func toImage(img store.Image) v1.Image {
	out := v1.Image{ID: img.ID, TenantID: img.TenantID, ComponentID: img.ComponentID, Kind: img.Kind, Name: img.Name,
		Version: img.Version, PayloadSHA256: img.PayloadSHA256, PayloadSize: img.PayloadSize, PackageSHA256: img.PackageSHA256,
		PackageSize: img.PackageSize, Development: img.Development, UploadedBy: img.UploadedBy, CreatedAt: img.CreatedAt}
	if json.Valid(img.Metadata) {
		out.Metadata = json.RawMessage(img.Metadata)
	}
	return out
}

func toDeployment(d store.Deployment, current bool) v1.Deployment {
	return v1.Deployment{ID: d.ID, TenantID: d.TenantID, DeviceGroupID: d.DeviceGroupID, ImageIDs: d.ImageIDs,
		Current: current, CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt}
}

func addImage(c *call) (any, error) {
	if ct := c.r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		return nil, problem.New(v1.CodeUnsupportedMedia, "an image upload must be application/octet-stream (Content-Type was %q)", ct)
	}
	if c.r.ContentLength > c.rt.limit {
		return nil, &http.MaxBytesError{Limit: c.rt.limit}
	}
	body := http.MaxBytesReader(nil, c.r.Body, c.rt.limit)
	return conv(toImage)(c.h.m.AddImage(c.r.Context(), c.p, c.param("tenant"), body))
}

func listImages(c *call) (any, error) {
	q := c.r.URL.Query()
	f := store.ImageFilter{ComponentID: q.Get("component_id"), Kind: q.Get("kind")}
	return listWith(c, func(o store.ListOptions) (store.Page[store.Image], error) {
		return c.h.m.ListImages(c.r.Context(), c.p, c.param("tenant"), f, o)
	}, toImage)
}

func getImage(c *call) (any, error) {
	return conv(toImage)(c.h.m.GetImage(c.r.Context(), c.p, c.param("tenant"), c.param("image")))
}

func downloadImage(c *call) (any, error) {
	img, err := c.h.m.GetImage(c.r.Context(), c.p, c.param("tenant"), c.param("image"))
	if err != nil {
		return nil, err
	}
	if c.h.packages == nil {
		return nil, fmt.Errorf("no package store is configured")
	}
	r, info, err := c.h.packages.Open(c.r.Context(), img.PackageSHA256)
	if err != nil {
		return nil, fmt.Errorf("opening the package of image %s: %w", img.ID, err)
	}
	return content{name: img.ID + ".rampkg", modTime: info.ModTime, r: r}, nil
}

func createDeployment(c *call) (any, error) {
	var req v1.DeploymentCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	d, err := c.h.m.CreateDeployment(c.r.Context(), c.p, c.param("tenant"), c.param("group"), req)
	if err != nil {
		return nil, err
	}
	return toDeployment(d, true), nil
}

func listDeployments(c *call) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	f := store.DeploymentFilter{DeviceGroupID: c.r.URL.Query().Get("device_group_id")}
	page, current, err := c.h.m.ListDeployments(c.r.Context(), c.p, c.param("tenant"), f, opt)
	if err != nil {
		return nil, err
	}
	return list(page, func(d store.Deployment) v1.Deployment { return toDeployment(d, current[d.ID]) }), nil
}

func getDeployment(c *call) (any, error) {
	d, current, err := c.h.m.GetDeployment(c.r.Context(), c.p, c.param("tenant"), c.param("deployment"))
	if err != nil {
		return nil, err
	}
	h, err := c.h.m.DeploymentHealth(c.r.Context(), c.p, d.TenantID, d.ID)
	if err != nil {
		return nil, err
	}
	out := toDeployment(d, current)
	out.Health = toHealth(h)
	return out, nil
}

// toHealth turns a cohort's hours into crash-free hours.
func toHealth(h store.CohortHours) *v1.DeploymentHealth {
	out := &v1.DeploymentHealth{Devices: h.Devices, DeviceHours: h.Hours, CrashedHours: h.CrashedHours}
	if h.Hours > 0 {
		pct := 100 * float64(h.Hours-h.CrashedHours) / float64(h.Hours)
		out.CrashFreeHoursPercent = &pct
	}
	return out
}

func exportUpdateRoot(c *call) (any, error) {
	b, err := c.h.m.ExportUpdateRoot(c.r.Context(), c.p, c.param("tenant"), c.r.URL.Query().Get("key_id"))
	if err != nil {
		return nil, err
	}
	return v1.UpdateRootKey{KeyPEM: string(b)}, nil
}

func importUpdateRoot(c *call) (any, error) {
	var req v1.UpdateRootKey
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return nil, c.h.m.ImportUpdateRoot(c.r.Context(), c.p, c.param("tenant"), []byte(req.KeyPEM))
}

func rotateUpdateRoot(c *call) (any, error) {
	var req v1.UpdateRootRotate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return c.h.m.RotateUpdateRoot(c.r.Context(), c.p, c.param("tenant"), req)
}

func prepareUpdateRoot(c *call) (any, error) {
	var req v1.UpdateRootPrepare
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return c.h.m.PrepareUpdateRoot(c.r.Context(), c.p, c.param("tenant"), req)
}

func completeUpdateRoot(c *call) (any, error) {
	var req v1.UpdateRootComplete
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return c.h.m.CompleteUpdateRoot(c.r.Context(), c.p, c.param("tenant"), req)
}

func updateRootStatus(c *call) (any, error) {
	return c.h.m.UpdateRootStatus(c.r.Context(), c.p, c.param("tenant"))
}

func imagesRootMetadata(c *call) (any, error) {
	b, err := c.h.m.ImagesRootMetadata(c.r.Context(), c.p, c.param("tenant"))
	if err != nil {
		return nil, err
	}
	return rawResponse{contentType: "application/json", body: b}, nil
}
