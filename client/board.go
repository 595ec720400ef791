package client

import (
	"context"
	"net/http"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// PressButton presses a button of an emulated device's board; the device takes the press at its
// next check-in, which it is asked to make at once.
func (c *Client) PressButton(ctx context.Context, tenant, device, button string) error {
	_, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "devices", device, "board", "press"}, nil, v1.BoardPress{Button: button}, nil)
	return err
}
