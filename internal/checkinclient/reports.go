package checkinclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// UploadReports uploads a batch of error-report events from the device's queue. The service
// stores each event ID of the device once, so a batch retried after a lost reply is not
// duplicated: the caller acknowledges the batch in its queue only when this returns nil. A
// refusal is an *Error; see Permanent.
func (c *Client) UploadReports(ctx context.Context, b v1.ReportBatch) (v1.ReportResult, error) {
	if b.Events == nil {
		b.Events = []v1.ReportEvent{}
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // as the event queue sizes events
	if err := enc.Encode(b); err != nil {
		return v1.ReportResult{}, err
	}
	if body.Len() > v1.MaxReportBody {
		return v1.ReportResult{}, fmt.Errorf("upload error reports: the batch takes %d bytes; at most %d", body.Len(), v1.MaxReportBody)
	}
	req, err := http.NewRequest("POST", c.url("/v1/device/reports"), &body)
	if err != nil {
		return v1.ReportResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	out, err := c.do(ctx, req, MaxResponse)
	if err != nil {
		return v1.ReportResult{}, fmt.Errorf("upload error reports: %w", err)
	}
	var res v1.ReportResult
	if err := json.Unmarshal(out, &res); err != nil {
		return v1.ReportResult{}, fmt.Errorf("upload error reports: the service's answer: %w", err)
	}
	return res, nil
}

// Permanent reports whether the service refused the request itself (malformed, too large or
// invalid), so that sending it again cannot succeed. The event queue discards a batch refused
// so rather than retry it forever.
func (e *Error) Permanent() bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusUnsupportedMediaType:
		return true
	}
	return false
}
