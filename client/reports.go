package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// MaxDownloadBytes bounds an error-report download.
const MaxDownloadBytes = 64 << 20

// ErrorReportFilter selects error reports. Empty fields match everything; the product and group
// are the device's when the report arrived. Since is inclusive, Until exclusive, on the event's
// time.
type ErrorReportFilter struct {
	ProductID     string
	DeviceGroupID string
	DeviceID      string
	Type          string
	Since         time.Time
	Until         time.Time
}

func (f ErrorReportFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{
		"product_id":      f.ProductID,
		"device_group_id": f.DeviceGroupID,
		"device_id":       f.DeviceID,
		"type":            f.Type,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// ErrorReportListOptions filters and pages a list of error reports.
type ErrorReportListOptions struct {
	ErrorReportFilter
	ListOptions
}

// ListErrorReports lists one page of the tenant's error reports, newest received first.
func (c *Client) ListErrorReports(ctx context.Context, tenant string, o ErrorReportListOptions) (v1.List[v1.ErrorReport], error) {
	var l v1.List[v1.ErrorReport]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "error-reports"}, listQuery(o.query(), o.ListOptions), nil, &l)
	return l, err
}

// AllErrorReports lists every error report o selects, newest received first.
func (c *Client) AllErrorReports(ctx context.Context, tenant string, o ErrorReportListOptions) ([]v1.ErrorReport, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.ErrorReport], error) {
		o.ListOptions = lo
		return c.ListErrorReports(ctx, tenant, o)
	})
}

// ErrorBuckets aggregates the error reports f selects by event type, component, image, signal
// and exit code, most events first; limit (1..1000, 0 for the server's default of 100) bounds
// how many buckets come back.
func (c *Client) ErrorBuckets(ctx context.Context, tenant string, f ErrorReportFilter, limit int) (v1.ErrorBuckets, error) {
	q := f.query()
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out v1.ErrorBuckets
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "error-reports", "buckets"}, q, nil, &out)
	return out, err
}

// DownloadErrorReports writes the error-report download of the reports f selects to w, as CSV
// with Azure Sphere's columns (format "csv" or "") or as JSON (v1.ErrorReportDownload, format
// "json"), and returns the bytes written.
func (c *Client) DownloadErrorReports(ctx context.Context, tenant string, f ErrorReportFilter, format string, w io.Writer) (int64, error) {
	q := f.query()
	if format != "" {
		q.Set("format", format)
	}
	resp, where, err := c.send(ctx, http.MethodGet, []string{"tenants", tenant, "error-reports", "download"}, q, nil, "", -1)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, io.LimitReader(resp.Body, MaxDownloadBytes+1))
	if err != nil {
		return n, fmt.Errorf("reading %s: %w", where, err)
	}
	if n > MaxDownloadBytes {
		return n, fmt.Errorf("%s: the download exceeds %d bytes", where, MaxDownloadBytes)
	}
	return n, nil
}
