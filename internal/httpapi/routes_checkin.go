package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/checkin"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/push"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/updatemeta"
)

// EventKeepalive is how often an idle push channel carries a comment, so that proxies and the
// device notice a dead connection.
const EventKeepalive = 25 * time.Second

// checkInRoutes are the device's check-in, its push channel and its image downloads.
func checkInRoutes() []route {
	return []route{
		{method: "POST", path: "/v1/device/check-in", op: "checkIn",
			summary: "Report installed images, OS slots and the latest update (mutual TLS); learn the group's current deployment, the check-in interval and where the signed update metadata is.",
			device:  true, in: v1.CheckIn{}, out: v1.CheckInResult{}, status: 200, limit: v1.MaxCheckInBody, handle: checkIn},
		{method: "GET", path: "/v1/device/events", op: "deviceEvents",
			summary: "The device's push channel (mutual TLS): server-sent events, each a JSON DeviceEvent; a deployment event means check in now. The first event asks for a check-in, so a reconnecting device catches up.",
			device:  true, status: 200, produces: "text/event-stream", handle: deviceEvents},
		{method: "GET", path: "/v1/device/metadata/{repository}/{file}", op: "deviceMetadata",
			summary: "A signed update-metadata file (TUF) of the device's group's director repository ({repository} = director) or its tenant's image repository (images): root.json, N.root.json, timestamp.json, N.snapshot.json, N.targets.json (mutual TLS).",
			device:  true, status: 200, produces: "application/json", handle: deviceMetadata},
		{method: "GET", path: "/v1/device/images/{image}/package", op: "deviceDownloadImage",
			summary: "An image package of the device's tenant (mutual TLS; Range requests supported). The device checks it against its verified update metadata.",
			device:  true, status: 200, produces: "application/octet-stream", handle: deviceDownloadImage},
	}
}

func checkIn(c *call) (any, error) {
	var req v1.CheckIn
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if c.h.checkin == nil {
		return nil, problem.New(v1.CodeUnavailable, "check-in is not configured on this server")
	}
	res, err := c.h.checkin.CheckIn(c.r.Context(), c.dev.Device, req)
	if err == nil {
		c.h.advanceRollout(c)
	}
	return res, err
}

// stream is a response the handler writes itself, for as long as it lasts.
type stream func(w http.ResponseWriter, r *http.Request)

func deviceEvents(c *call) (any, error) {
	if c.h.push == nil {
		return nil, problem.New(v1.CodeUnavailable, "the push channel is not configured on this server")
	}
	dev := c.dev.Device
	hub := c.h.push
	return stream(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		// The stream outlives the server's read and write timeouts, which are for requests.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		sub := hub.Subscribe(dev.TenantID, dev.DeviceGroupID, dev.ID)
		defer sub.Close()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		send := func(e push.Event) error {
			b, err := json.Marshal(v1.DeviceEvent{Type: e.Type, DeploymentID: e.DeploymentID})
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, b); err != nil {
				return err
			}
			return rc.Flush()
		}
		if send(push.Event{Type: push.EventCheckIn}) != nil {
			return
		}
		keep := time.NewTicker(EventKeepalive)
		defer keep.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-sub.Done(): // the device opened another channel
				return
			case e := <-sub.C():
				if send(e) != nil {
					return
				}
			case <-keep.C:
				if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
					return
				}
			}
		}
	}), nil
}

func deviceMetadata(c *call) (any, error) {
	dev := c.dev.Device
	var repo string
	switch c.param("repository") {
	case "director":
		if dev.DeviceGroupID == "" {
			return nil, problem.New(v1.CodeNotFound, "the device is in no device group, so it has no director repository")
		}
		var err error
		// During a rollout, a device not yet released is served the held director.
		if repo, _, err = updatemeta.DirectorFor(c.r.Context(), c.h.m.Store(), dev.TenantID, dev.DeviceGroupID, dev.ID); err != nil {
			return nil, err
		}
	case "images":
		repo = store.TUFImages
	default:
		return nil, problem.New(v1.CodeNotFound, "no repository %q: it is director or images", c.param("repository"))
	}
	b, err := updatemeta.File(c.r.Context(), c.h.m.Store(), dev.TenantID, repo, c.param("file"))
	if errors.Is(err, updatemeta.ErrNoFile) {
		return nil, problem.New(v1.CodeNotFound, "%v", err)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

func deviceDownloadImage(c *call) (any, error) {
	img, err := c.h.m.Store().GetImage(c.r.Context(), c.dev.TenantID, c.param("image"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(v1.CodeNotFound, "no image %q in the device's tenant", c.param("image"))
	}
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

// deviceStatus is the device's latest check-in report, or nil if it never checked in.
func deviceStatus(c *call, d v1.Device) (v1.Device, error) {
	r, err := c.h.m.GetDeviceReport(c.r.Context(), c.p, d.TenantID, d.ID)
	if errors.Is(err, store.ErrNotFound) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	d.Status, err = checkin.Status(r)
	return d, err
}
