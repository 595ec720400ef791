package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// PressButton queues a press of a button of an emulated device's board, which the device takes
// at its next check-in, and wakes the device so that it checks in now. The device must have
// reported a board with that button. Audited.
func (m *Manager) PressButton(ctx context.Context, p *authz.Principal, tenantID, deviceID, button string) error {
	o := op{tenantID: tenantID, action: authz.DevicePress, resourceType: "device", resourceID: deviceID}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("button", clipName(button))
		r, err := tx.GetDeviceReport(ctx, tenantID, deviceID)
		if errors.Is(err, store.ErrNotFound) {
			if _, err := tx.GetDevice(ctx, tenantID, deviceID); err != nil {
				return err
			}
			return problem.New(v1.CodeConflict, "device %s has not reported a board: only an emulated device's buttons can be pressed", deviceID)
		}
		if err != nil {
			return err
		}
		var in v1.CheckIn
		if err := json.Unmarshal(r.Report, &in); err != nil {
			return fmt.Errorf("reading the device's report: %w", err)
		}
		if in.Board == nil {
			return problem.New(v1.CodeConflict, "device %s has not reported a board: only an emulated device's buttons can be pressed", deviceID)
		}
		found := false
		for _, b := range in.Board.Buttons {
			found = found || b.Name == button
		}
		if !found {
			return problem.Invalid(v1.ErrorDetail{Field: "button", Message: fmt.Sprintf("the device's board has no button %q", clipName(button))})
		}
		if err := tx.AddBoardPress(ctx, tenantID, deviceID, button, m.timestamp()); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return problem.New(v1.CodeConflict, "%d presses already wait for device %s to check in", store.MaxBoardPresses, deviceID)
			}
			return err
		}
		return nil
	})
	if err == nil && m.notify != nil {
		m.notify.WakeDevice(tenantID, deviceID)
	}
	return err
}
