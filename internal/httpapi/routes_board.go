package httpapi

import (
	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
)

// boardRoutes drive the boards of emulated devices (the console's live board).
func boardRoutes() []route {
	return []route{
		{method: "POST", path: tenantPath + "/devices/{device}/board/press", op: "pressDeviceButton",
			summary: "Press a button of an emulated device's board: the device takes the press at its next check-in, which it is asked to make at once. The device must have reported a board with that button.",
			action:  authz.DevicePress, in: v1.BoardPress{}, status: 202, handle: pressButton},
	}
}

func pressButton(c *call) (any, error) {
	var req v1.BoardPress
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return nil, c.h.m.PressButton(c.r.Context(), c.p, c.param("tenant"), c.param("device"), req.Button)
}
