package manage

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/rollout"
	"github.com/rampart-iot/rampart/internal/store"
)

// Limits on images and deployments.
const (
	MaxImageSize        = 1 << 30
	MaxDeploymentImages = 64
)

// Blobs is where image packages are kept, content-addressed.
type Blobs interface {
	// Put stores what r holds (at most maxSize bytes) and returns its SHA-256 (lowercase hex)
	// and size.
	Put(ctx context.Context, r io.Reader, maxSize int64) (sha256 string, size int64, err error)
}

// ImageSigner holds the tenants' image-signing keys (internal/imagesign).
type ImageSigner interface {
	// Countersign adds the tenant's signature to a validated package.
	Countersign(ctx context.Context, tenantID string, pkg *imagepkg.Package) error
	// PublicKeys are the tenant's image-signing public keys.
	PublicKeys(ctx context.Context, tenantID string) ([]crypto.PublicKey, error)
}

// AddImage validates an uploaded image package, countersigns it with the tenant's image-signing
// key, stores the countersigned package and records the image. The package must be well
// formed, signed (by the development key or the tenant's own key), carry exactly the payload
// its metadata names, and be of a component this tenant owns or no tenant has claimed yet.
func (m *Manager) AddImage(ctx context.Context, p *authz.Principal, tenantID string, body io.Reader) (store.Image, error) {
	var out store.Image
	o := op{tenantID: tenantID, action: authz.ImageAdd, resourceType: "image"}
	if _, err := m.authorize(ctx, p, tenantID, authz.ImageAdd); err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) && pe.Code == v1.CodeForbidden {
			m.auditFailure(ctx, p, o, &note{}, err)
		}
		return out, err
	}
	if m.blobs == nil || m.signer == nil {
		return out, errors.New("images are not configured on this server")
	}
	n := &note{}
	img, err := m.acceptImage(ctx, p, tenantID, body, n)
	if err != nil {
		m.auditFailure(ctx, p, o, n, err)
		return out, err
	}
	err = m.writeAuthorized(ctx, p, o, func(tx store.Tx, w *note) error {
		*w = *n
		if err := tx.CreateImage(ctx, img); err != nil {
			return err
		}
		if err := m.addImageRelease(ctx, tx, img, w); err != nil {
			return err
		}
		if m.meta != nil {
			return m.meta.PublishImages(ctx, tx, tenantID)
		}
		return nil
	})
	if errors.Is(err, store.ErrComponentOwned) {
		err = &problem.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("component %s belongs to another tenant; pick a new component ID", img.ComponentID), Err: err}
	}
	return img, err
}

// acceptImage does the work of AddImage outside any store transaction: spool, check,
// countersign, store the package.
func (m *Manager) acceptImage(ctx context.Context, p *authz.Principal, tenantID string, body io.Reader, n *note) (store.Image, error) {
	spool, err := os.CreateTemp(m.spoolDir, "upload-*")
	if err != nil {
		return store.Image{}, fmt.Errorf("spooling an upload: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	size, err := io.Copy(spool, io.LimitReader(body, MaxImageSize+1))
	if err != nil {
		return store.Image{}, err
	}
	if size > MaxImageSize {
		return store.Image{}, &problem.Error{Code: v1.CodePayloadTooLarge, Message: fmt.Sprintf("image package is larger than %d bytes", MaxImageSize)}
	}
	pkg, err := imagepkg.Open(spool, size)
	if err != nil {
		return store.Image{}, invalidPackage(err)
	}
	md := pkg.Metadata
	n.resourceID = md.ImageID
	n.detail("component_id", md.ComponentID)
	n.detail("version", md.ImageVersion)
	n.detail("kind", string(md.Kind))
	// An upload is signed by the development key or by the tenant's own key (a re-upload).
	keys, err := m.signer.PublicKeys(ctx, tenantID)
	if err != nil {
		return store.Image{}, err
	}
	keys = append(keys, imagepkg.DevelopmentPublicKey())
	if _, err := pkg.Verify(keys, 1); err != nil {
		return store.Image{}, invalidPackage(err)
	}
	if err := pkg.VerifyPayload(); err != nil {
		return store.Image{}, invalidPackage(err)
	}
	if err := m.signer.Countersign(ctx, tenantID, pkg); err != nil {
		return store.Image{}, fmt.Errorf("countersigning: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { _, err := pkg.WriteTo(pw); pw.CloseWithError(err) }()
	digest, psize, err := m.blobs.Put(ctx, pr, MaxImageSize+imagepkg.MaxEnvelopeSize+64)
	pr.CloseWithError(err)
	if err != nil {
		return store.Image{}, fmt.Errorf("storing the package: %w", err)
	}
	metadata, err := json.Marshal(md)
	if err != nil {
		return store.Image{}, err
	}
	return store.Image{ID: md.ImageID, TenantID: tenantID, ComponentID: md.ComponentID, Kind: string(md.Kind), Name: md.Name,
		Version: md.ImageVersion, PayloadSHA256: md.Payload.SHA256, PayloadSize: md.Payload.Size, PackageSHA256: digest,
		PackageSize: psize, Metadata: metadata, Development: md.Development, UploadedBy: p.UserID, CreatedAt: m.timestamp()}, nil
}

func invalidPackage(err error) error {
	return &problem.Error{Code: v1.CodeValidation, Message: "invalid image package: " + err.Error(), Err: err}
}

// GetImage returns an image of the tenant.
func (m *Manager) GetImage(ctx context.Context, p *authz.Principal, tenantID, id string) (store.Image, error) {
	if err := m.read(ctx, p, tenantID, authz.ImageRead); err != nil {
		return store.Image{}, err
	}
	return m.store.GetImage(ctx, tenantID, id)
}

// ListImages lists the tenant's images.
func (m *Manager) ListImages(ctx context.Context, p *authz.Principal, tenantID string, f store.ImageFilter, opt store.ListOptions) (store.Page[store.Image], error) {
	if err := m.read(ctx, p, tenantID, authz.ImageRead); err != nil {
		return store.Page[store.Image]{}, err
	}
	return m.store.ListImages(ctx, tenantID, f, opt)
}

// CreateDeployment makes a group's new deployment. Images must be the tenant's, at most one per
// component, and no two applications may claim the same peripheral.
func (m *Manager) CreateDeployment(ctx context.Context, p *authz.Principal, tenantID, groupID string, req v1.DeploymentCreate) (store.Deployment, error) {
	var out store.Deployment
	o := op{tenantID: tenantID, action: authz.DeploymentCreate, resourceType: "deployment"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("device_group_id", groupID)
		n.detail("image_ids", req.ImageIDs)
		var ps problems
		if len(req.ImageIDs) == 0 || len(req.ImageIDs) > MaxDeploymentImages {
			ps.add("image_ids", "must list 1 to %d images", MaxDeploymentImages)
		}
		seen := map[string]bool{}
		for i, id := range req.ImageIDs {
			ps.checkID(fmt.Sprintf("image_ids[%d]", i), id)
			if seen[id] {
				ps.add(fmt.Sprintf("image_ids[%d]", i), "%s is listed twice", id)
			}
			seen[id] = true
		}
		if req.Rollout != nil {
			ps = append(ps, rollout.Validate(*req.Rollout)...)
		}
		if err := ps.err(); err != nil {
			return err
		}
		if _, err := tx.GetDeviceGroup(ctx, tenantID, groupID); err != nil {
			return err
		}
		var prev *store.Deployment
		if cur, err := tx.CurrentDeployment(ctx, tenantID, groupID); err == nil {
			prev = &cur
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var images []store.Image
		for _, id := range req.ImageIDs {
			img, err := tx.GetImage(ctx, tenantID, id)
			if err != nil {
				return err
			}
			images = append(images, img)
		}
		if err := checkDeployable(images); err != nil {
			return err
		}
		id, err := m.newID()
		if err != nil {
			return err
		}
		n.resourceID = id
		out = store.Deployment{ID: id, TenantID: tenantID, DeviceGroupID: groupID, ImageIDs: req.ImageIDs,
			CreatedBy: p.UserID, CreatedAt: m.timestamp()}
		if err := tx.CreateDeployment(ctx, out); err != nil {
			return err
		}
		if err := m.startRollout(ctx, tx, n, out, prev, req.Rollout); err != nil {
			return err
		}
		if m.meta != nil {
			return m.meta.PublishDirector(ctx, tx, tenantID, groupID)
		}
		return nil
	})
	if err == nil && m.notify != nil {
		m.notify.DeploymentCreated(tenantID, groupID, out.ID)
	}
	return out, err
}

// checkDeployable refuses a set of images with two images of one component, or two
// applications that claim the same peripheral: exclusive grants, as on Azure Sphere. UART, I2C
// and SPI share the ISU blocks, so those three are one class.
func checkDeployable(images []store.Image) error {
	components := map[string]string{}
	owner := map[string]string{} // peripheral key -> application name
	var ps problems
	for i, img := range images {
		if other, ok := components[img.ComponentID]; ok {
			ps.add(fmt.Sprintf("image_ids[%d]", i), "images %s and %s are of the same component %s; deploy one", other, img.ID, img.ComponentID)
			continue
		}
		components[img.ComponentID] = img.ID
		if img.Kind != store.ImageApplication {
			continue
		}
		var md imagepkg.Metadata
		if err := json.Unmarshal(img.Metadata, &md); err != nil || md.Manifest == nil {
			return fmt.Errorf("image %s: stored metadata: %v", img.ID, err)
		}
		app := md.Manifest.Name
		if app == "" {
			app = img.ComponentID
		}
		c := md.Manifest.Capabilities
		for _, class := range []struct {
			key  string
			list []fmt.Stringer
		}{
			{"GPIO", stringers(c.Gpio)}, {"ISU", stringers(c.Uart, c.I2cMaster, c.SpiMaster)}, {"ADC", stringers(c.Adc)},
			{"PWM", stringers(c.Pwm)}, {"I2S", stringers(c.I2sSubordinate)}, {"interrupt", stringers(c.ExternalInterrupt)},
		} {
			for _, per := range class.list {
				key := class.key + " " + strings.ToUpper(per.String())
				if other, ok := owner[key]; ok && other != app {
					ps.add(fmt.Sprintf("image_ids[%d]", i), "applications %q and %q both claim %s; peripheral grants are exclusive", other, app, key)
					continue
				}
				owner[key] = app
			}
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Field < ps[j].Field })
	if len(ps) > 0 {
		pe := problem.Invalid(ps...)
		pe.Code = v1.CodeConflict
		return pe
	}
	return nil
}

func stringers[T fmt.Stringer](lists ...[]T) []fmt.Stringer {
	var out []fmt.Stringer
	for _, l := range lists {
		for _, x := range l {
			out = append(out, x)
		}
	}
	return out
}

// GetDeployment returns a deployment of the tenant.
func (m *Manager) GetDeployment(ctx context.Context, p *authz.Principal, tenantID, id string) (store.Deployment, bool, error) {
	if err := m.read(ctx, p, tenantID, authz.DeploymentRead); err != nil {
		return store.Deployment{}, false, err
	}
	d, err := m.store.GetDeployment(ctx, tenantID, id)
	if err != nil {
		return d, false, err
	}
	cur, err := m.store.CurrentDeployment(ctx, tenantID, d.DeviceGroupID)
	return d, err == nil && cur.ID == d.ID, nil
}

// DeploymentHealth returns a deployment cohort's device-hours and crashed hours.
func (m *Manager) DeploymentHealth(ctx context.Context, p *authz.Principal, tenantID, id string) (store.CohortHours, error) {
	if err := m.read(ctx, p, tenantID, authz.DeploymentRead); err != nil {
		return store.CohortHours{}, err
	}
	if _, err := m.store.GetDeployment(ctx, tenantID, id); err != nil {
		return store.CohortHours{}, err
	}
	return m.store.CohortHours(ctx, tenantID, id)
}

// ListDeployments lists the tenant's deployments newest first, and says which are current.
func (m *Manager) ListDeployments(ctx context.Context, p *authz.Principal, tenantID string, f store.DeploymentFilter, opt store.ListOptions) (store.Page[store.Deployment], map[string]bool, error) {
	if err := m.read(ctx, p, tenantID, authz.DeploymentRead); err != nil {
		return store.Page[store.Deployment]{}, nil, err
	}
	page, err := m.store.ListDeployments(ctx, tenantID, f, opt)
	if err != nil {
		return page, nil, err
	}
	current := map[string]bool{}
	checked := map[string]bool{}
	for _, d := range page.Items {
		if checked[d.DeviceGroupID] {
			continue
		}
		checked[d.DeviceGroupID] = true
		if cur, err := m.store.CurrentDeployment(ctx, tenantID, d.DeviceGroupID); err == nil {
			current[cur.ID] = true
		}
	}
	return page, current, nil
}
