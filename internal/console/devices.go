package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/checkin"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Bounds of the device list: a page shows at most devicePage devices and examines at most
// deviceScan to find them (filters by state are applied to what is examined); the list then
// offers to continue where it stopped.
const (
	devicePage       = 50
	deviceScan       = 2000
	deviceScanPage   = 500
	maxFilterGroups  = 500
	attestationsPage = 20
)

type devicesView struct {
	Q, Group, State string
	States          []string
	Groups          []store.DeviceGroup
	GroupNames      map[string]string
	Devices         []store.Device
	Next            string // the cursor of the next page, "" on the last
	NextURL         string
	Scanned         int
	Stopped         bool // the scan budget ran out before the page filled
	CanClaim        bool
	Claim           claimForm
	CanMove         bool
	Move            *form           // the bulk move's form
	Selected        map[string]bool // the devices selected for a refused move
}

// claimForm is the claim form's input and, after a refused claim, its error.
type claimForm struct {
	Record, Group string
	Error         string
	Details       []v1.ErrorDetail
}

// devices lists devices, searched by ID prefix and filtered by group and state, one bounded
// page at a time (keyset paging by device ID).
func (h *Handler) devices(c *call) error { return h.showDevices(c, http.StatusOK, claimForm{}) }

func (h *Handler) showDevices(c *call, status int, claim claimForm) error {
	return h.showDevicesWith(c, status, claim, nil, nil)
}

// showDevicesWith shows the devices list with the claim form and the bulk move's form as they
// were posted (move nil for a fresh one), and the devices that were selected.
func (h *Handler) showDevicesWith(c *call, status int, claim claimForm, move *form, selected []string) error {
	ctx := c.r.Context()
	v := devicesView{CanClaim: c.can(authz.DeviceClaim), Claim: claim, CanMove: c.can(authz.DeviceMove), Move: move, Selected: map[string]bool{}}
	if v.Move == nil {
		v.Move = &form{Values: map[string]string{}}
	}
	for _, id := range selected {
		v.Selected[id] = true
	}
	var err error
	after, err := c.query("after")
	if err != nil {
		return err
	}
	if v.Q, err = c.query("q"); err != nil {
		return err
	}
	if v.Group, err = c.query("group"); err != nil {
		return err
	}
	if v.State, err = c.query("state"); err != nil {
		return err
	}
	v.Q = strings.ToLower(strings.TrimSpace(v.Q))
	var ps []v1.ErrorDetail
	if v.Q != "" && (len(v.Q) > 64 || strings.Trim(v.Q, "0123456789abcdef") != "") {
		ps = append(ps, v1.ErrorDetail{Field: "q", Message: "a device ID prefix is 1 to 64 hexadecimal digits"})
	}
	f := store.DeviceFilter{}
	switch {
	case v.Group == "":
	case v.Group == "none":
		f.Unassigned = true
	case ids.Valid(v.Group):
		f.DeviceGroupID = v.Group
	default:
		ps = append(ps, v1.ErrorDetail{Field: "group", Message: "is not a device group ID"})
	}
	if v.State != "" && !slices.Contains(deviceStates, v.State) {
		ps = append(ps, v1.ErrorDetail{Field: "state", Message: "must be one of " + strings.Join(deviceStates, ", ")})
	}
	if len(ps) > 0 {
		return problem.Invalid(ps...)
	}
	if len(v.Q) == 64 { // a whole ID: open the device
		if _, err := h.m.GetDevice(ctx, c.p, c.tenant.ID, v.Q); err == nil {
			c.redirect(c.tenantPath("devices/" + v.Q))
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{}, store.ListOptions{Limit: maxFilterGroups})
	if err != nil {
		return err
	}
	v.States, v.Groups, v.GroupNames = deviceStates, groups.Items, groupNames(groups.Items)

	// IDs with the prefix q sort right after q itself (an ID is longer than any prefix of it),
	// so the search starts there and ends at the first ID without the prefix.
	if v.Q != "" && len(v.Q) < 64 && after < v.Q {
		after = v.Q
	}
	done := len(v.Q) == 64
	for !done && len(v.Devices) < devicePage && v.Scanned < deviceScan {
		page, err := h.m.ListDevices(ctx, c.p, c.tenant.ID, f, store.ListOptions{After: after, Limit: deviceScanPage})
		if err != nil {
			return err
		}
		i := 0
		for ; i < len(page.Items) && len(v.Devices) < devicePage; i++ {
			d := page.Items[i]
			if v.Q != "" && !strings.HasPrefix(d.ID, v.Q) {
				done = true
				break
			}
			v.Scanned++
			after = d.ID
			if v.State == "" || deviceState(d) == v.State {
				v.Devices = append(v.Devices, d)
			}
		}
		if !done && i == len(page.Items) && page.Next == "" {
			done = true
		}
	}
	if !done {
		v.Next = after
		v.Stopped = len(v.Devices) < devicePage
		q := url.Values{"after": {after}}
		for k, val := range map[string]string{"q": v.Q, "group": v.Group, "state": v.State} {
			if val != "" {
				q.Set(k, val)
			}
		}
		v.NextURL = c.tenantPath("devices") + "?" + q.Encode()
	}
	vw := h.view(c, "Devices", "devices")
	vw.Data = v
	h.render(c.w, c.r, status, "devices", vw)
	return nil
}

func groupNames(gs []store.DeviceGroup) map[string]string {
	m := make(map[string]string, len(gs))
	for _, g := range gs {
		m[g.ID] = g.Name
	}
	return m
}

type deviceView struct {
	Device       store.Device
	State        string
	Group        *store.DeviceGroup
	Product      string
	Attestations []store.Attestation
	AttNextURL   string
	Status       *v1.DeviceStatus // nil if the device never checked in
	StatusError  string
	CanDisable   bool
	CanPress     bool
	AuditURL     string
	Certificates []store.Attestation // the passes on this page of attestations: the certificates issued
	Events       []store.ErrorReport // the device's latest error-report events
	CanEvents    bool
	CanMove      bool
	Groups       []store.DeviceGroup // the groups the device can be moved to
	Move         *form
}

// deviceEvents is how many of a device's latest error-report events its page shows.
const deviceEvents = 20

// device shows one device: identity, attestation history, what it reported at its latest
// check-in, and the disable/enable control for roles that may use it.
func (h *Handler) device(c *call) error { return h.showDevice(c, http.StatusOK, nil) }

func (h *Handler) showDevice(c *call, status int, move *form) error {
	ctx := c.r.Context()
	id := c.r.PathValue("device")
	attAfter, err := c.query("att_after")
	if err != nil {
		return err
	}
	d, err := h.m.GetDevice(ctx, c.p, c.tenant.ID, id)
	if err != nil {
		return err
	}
	v := deviceView{Device: d, State: deviceState(d), CanDisable: c.can(authz.DeviceDisable), CanPress: c.can(authz.DevicePress),
		AuditURL: c.tenantPath("audit") + "?" + url.Values{"resource": {d.ID}}.Encode(), CanMove: c.can(authz.DeviceMove), Move: move}
	if v.CanMove {
		groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{}, store.ListOptions{Limit: maxFilterGroups})
		if err != nil {
			return err
		}
		v.Groups = groups.Items
		if v.Move == nil {
			v.Move = &form{Values: map[string]string{"group": d.DeviceGroupID}}
			if d.DeviceGroupID == "" {
				v.Move.Values["group"] = noGroup
			}
		}
	}
	if d.DeviceGroupID != "" {
		g, err := h.m.GetDeviceGroup(ctx, c.p, c.tenant.ID, d.DeviceGroupID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil {
			v.Group = &g
			if p, err := h.m.GetProduct(ctx, c.p, c.tenant.ID, g.ProductID); err == nil {
				v.Product = p.Name
			}
		}
	}
	atts, err := h.m.ListAttestations(ctx, c.p, c.tenant.ID, d.ID, store.ListOptions{After: attAfter, Limit: attestationsPage})
	if err != nil {
		return err
	}
	v.Attestations = atts.Items
	for _, a := range atts.Items {
		if a.Result == store.AttestationPass && a.CertificateSerial != "" {
			v.Certificates = append(v.Certificates, a)
		}
	}
	if c.can(authz.ErrorReportRead) {
		v.CanEvents = true
		evs, err := h.m.ListErrorReports(ctx, c.p, c.tenant.ID, store.ErrorReportFilter{DeviceID: d.ID}, store.ListOptions{Limit: deviceEvents})
		if err != nil {
			return err
		}
		v.Events = evs.Items
	}
	if atts.Next != "" {
		v.AttNextURL = c.tenantPath("devices/"+url.PathEscape(d.ID)) + "?" + url.Values{"att_after": {atts.Next}}.Encode()
	}
	rep, err := h.m.GetDeviceReport(ctx, c.p, c.tenant.ID, d.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if v.Status, err = checkin.Status(rep); err != nil {
			h.log.Warn("console: a stored check-in report does not decode", "device", d.ID, "error", err)
			v.StatusError = "The latest check-in report could not be decoded."
		}
	}
	vw := h.view(c, "Device "+shortID(d.ID), "devices")
	vw.Data = v
	h.render(c.w, c.r, status, "device", vw)
	return nil
}

// setDeviceState disables or enables a device (POST, CSRF-checked; manage authorizes and
// audits it).
func (h *Handler) setDeviceState(c *call) error {
	id := c.r.PathValue("device")
	var disabled bool
	switch a := c.r.PostForm.Get("action"); a {
	case "disable":
		disabled = true
	case "enable":
	default:
		return problem.Invalid(v1.ErrorDetail{Field: "action", Message: fmt.Sprintf("must be disable or enable, not %q", a)})
	}
	if _, err := h.m.SetDeviceDisabled(c.r.Context(), c.p, c.tenant.ID, id, disabled); err != nil {
		return err
	}
	c.redirect(c.tenantPath("devices/" + url.PathEscape(id)))
	return nil
}

// claimDevice claims a device from the enrollment record `rampart-agent enroll` wrote (POST,
// CSRF-checked; manage authorizes, validates and audits it, as the API does), optionally into a
// group, and opens its page; a refused record is shown in place with the form as typed.
func (h *Handler) claimDevice(c *call) error {
	form := claimForm{Record: c.r.PostForm.Get("enrollment"), Group: c.r.PostForm.Get("group")}
	refuse := func(msg string, details []v1.ErrorDetail) error {
		form.Error, form.Details = msg, details
		return h.showDevices(c, http.StatusUnprocessableEntity, form)
	}
	rec := strings.TrimSpace(form.Record)
	if rec == "" {
		return refuse("Paste the device's enrollment record (the JSON that rampart-agent enroll wrote).", nil)
	}
	if !json.Valid([]byte(rec)) {
		return refuse("The enrollment record is not JSON: paste the whole file that rampart-agent enroll wrote.", nil)
	}
	out, err := h.m.Claim(c.r.Context(), c.p, c.tenant.ID, []json.RawMessage{json.RawMessage(rec)}, form.Group)
	if err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) && pe.Code == v1.CodeValidation {
			return refuse(pe.Message, pe.Details)
		}
		return err
	}
	if len(out) != 1 {
		return fmt.Errorf("claim: %d outcomes for one record", len(out))
	}
	if o := out[0]; o.Result == v1.ClaimFailed {
		return refuse("The device was not claimed: "+o.Err.Error(), nil)
	}
	c.redirect(c.tenantPath("devices/" + url.PathEscape(out[0].DeviceID)))
	return nil
}

// pressButton presses a button of an emulated device's board (POST, CSRF-checked; manage
// authorizes and audits it); the device takes it at its next check-in, which it is asked to
// make at once.
func (h *Handler) pressButton(c *call) error {
	id := c.r.PathValue("device")
	if err := h.m.PressButton(c.r.Context(), c.p, c.tenant.ID, id, c.r.PostForm.Get("button")); err != nil {
		return err
	}
	c.redirect(c.tenantPath("devices/"+url.PathEscape(id)) + "#board-h")
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}
