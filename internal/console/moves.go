package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Moving devices between groups: one device from its page, or the devices selected on the
// devices list. Each move is manage.MoveDevice, as for the API (which has no bulk move): its
// own transaction and its own audit entry, so a selection gets one result per device, as a
// bulk claim does, and a device that cannot be moved does not stop the others.

// noGroup is the group input's value for "no group" (an empty value is "not chosen").
const noGroup = "none"

// maxBulkMove bounds the devices one form moves (a devices page shows devicePage).
const maxBulkMove = 500

// targetGroup reads the group input: the group ID to move to ("" for no group), or a problem
// recorded next to the input.
func targetGroup(f *form) (string, bool) {
	switch g := f.V("group"); g {
	case "":
		f.add("group", "choose a device group, or no group")
		return "", false
	case noGroup:
		return "", true
	default:
		return g, true
	}
}

// moveDevice moves one device (POST from its page) and shows its page again.
func (h *Handler) moveDevice(c *call) error {
	f := newForm(c, "group")
	id := c.r.PathValue("device")
	group, ok := targetGroup(f)
	if !ok {
		if _, err := f.typed(c, authz.DeviceMove); err != nil {
			return err
		}
		return h.showDevice(c, http.StatusUnprocessableEntity, f)
	}
	if _, err := h.m.MoveDevice(c.r.Context(), c.p, c.tenant.ID, id, group); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		if status == http.StatusNotFound && len(f.Fields) == 0 {
			// The device is there (or the page above would fail): the group is not.
			f.add("group", f.Error)
		}
		return h.showDevice(c, status, f)
	}
	c.redirect(c.tenantPath("devices/" + url.PathEscape(id)))
	return nil
}

// moveResult is one selected device's outcome.
type moveResult struct {
	DeviceID string
	Moved    bool
	Error    string
}

type moveView struct {
	Group      string // the group's name, "" for no group
	GroupURL   string
	Results    []moveResult
	Moved      int
	Failed     int
	DevicesURL string
}

// moveDevices moves the devices selected on the devices list to one group (or none) and shows
// each device's result.
func (h *Handler) moveDevices(c *call) error {
	ctx := c.r.Context()
	f := newForm(c, "group", "device")
	var selected []string // in the order posted, each once
	for _, id := range c.r.PostForm["device"] {
		if !slices.Contains(selected, id) && len(selected) <= maxBulkMove {
			selected = append(selected, id)
		}
	}
	group, ok := targetGroup(f)
	switch {
	case len(selected) == 0:
		f.add("device", "select at least one device")
	case len(selected) > maxBulkMove:
		f.add("device", "at most 500 devices may be moved at once")
	}
	var g store.DeviceGroup
	if ok && group != "" && len(f.Fields) == 0 && c.can(authz.DeviceMove) {
		var err error
		if g, err = h.m.GetDeviceGroup(ctx, c.p, c.tenant.ID, group); errors.Is(err, store.ErrNotFound) {
			f.add("group", "there is no such device group")
		} else if err != nil {
			return err
		}
	}
	if bad, err := f.typed(c, authz.DeviceMove); err != nil {
		return err
	} else if bad {
		return h.showDevicesWith(c, http.StatusUnprocessableEntity, claimForm{}, f, selected)
	}
	v := moveView{Group: g.Name, DevicesURL: c.tenantPath("devices")}
	q := url.Values{"group": {noGroup}}
	if group != "" {
		q.Set("group", group)
		v.GroupURL = c.tenantPath("groups/" + url.PathEscape(group))
	}
	v.DevicesURL += "?" + q.Encode()
	for _, id := range selected {
		res := moveResult{DeviceID: id}
		_, err := h.m.MoveDevice(ctx, c.p, c.tenant.ID, id, group)
		status, body, internal := problem.Describe(err)
		switch {
		case err == nil:
			res.Moved = true
			v.Moved++
		case status == http.StatusForbidden || status == http.StatusUnauthorized:
			return err // the caller may move nothing: nothing was moved
		case internal:
			h.log.Error("console: moving a device", "device", id, "error", err)
			res.Error = body.Message
		default:
			res.Error = body.Message
		}
		if !res.Moved {
			v.Failed++
		}
		v.Results = append(v.Results, res)
	}
	vw := h.view(c, "Moved devices", "devices")
	vw.Data = v
	h.render(c.w, c.r, http.StatusOK, "moved", vw)
	return nil
}
