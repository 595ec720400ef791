package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Bucket limits of the buckets endpoint.
const (
	DefaultBuckets = 100
	MaxBuckets     = 1000
)

var reportFilterParams = []queryParam{
	{"product_id", "string", "only reports from devices that were in groups of this product when they reported"},
	{"device_group_id", "string", "only reports from devices that were in this group when they reported"},
	{"device_id", "string", "only this device's reports"},
	{"type", "string", "only this event type: AppCrash, AppExit, AppOOM, SandboxDenied, UpdateFailed, RollbackPerformed, AttestationFailed, AgentRestart or WatchdogReset"},
	{"since", "date-time", "only events at or after this time (the device's clock)"},
	{"until", "date-time", "only events before this time (the device's clock)"},
}

// reportRoutes are failure reporting: the devices' upload and the tenant's reads.
func reportRoutes() []route {
	return []route{
		{method: "POST", path: "/v1/device/reports", op: "uploadReports",
			summary: "Upload queued error-report events (mutual TLS): at most 256 events and 256 KiB; limited per device (429 with Retry-After). Idempotent: an event ID the service has for the device is skipped, so a retry after a lost reply duplicates nothing.",
			device:  true, perDevice: true, in: v1.ReportBatch{}, out: v1.ReportResult{}, status: 200, limit: v1.MaxReportBody, handle: uploadReports},
		{method: "GET", path: tenantPath + "/error-reports", op: "listErrorReports", summary: "The events the tenant's devices reported, newest received first.",
			action: authz.ErrorReportRead, out: v1.List[v1.ErrorReport]{}, status: 200, list: true, query: reportFilterParams, handle: listErrorReports},
		{method: "GET", path: tenantPath + "/error-reports/buckets", op: "listErrorBuckets",
			summary: "The selected events aggregated by event type, component, image, signal and exit code, with counts and first and last seen; most events first.",
			action:  authz.ErrorReportRead, out: v1.ErrorBuckets{}, status: 200,
			query: append([]queryParam{{"limit", "integer", "at most this many buckets, 1 to 1000 (default 100)"}}, reportFilterParams...), handle: listErrorBuckets},
		{method: "GET", path: tenantPath + "/error-reports/download", op: "downloadErrorReports",
			summary: "The error-report download, one row per device and bucket with Azure Sphere's columns (Device ID, Event Type, Event Class, Event Count, Description, Start Time, End Time): CSV, or JSON (ErrorReportDownload) with format=json. At most 10000 rows.",
			action:  authz.ErrorReportRead, status: 200, produces: "text/csv",
			query: append([]queryParam{{"format", "string", "csv (default) or json"}}, reportFilterParams...), handle: downloadErrorReports},
	}
}

func uploadReports(c *call) (any, error) {
	var req v1.ReportBatch
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	res, err := errorreport.Ingest(c.r.Context(), c.h.m.Store(), c.dev.Device, req, c.h.now(), c.h.m.ErrorBucketCreated)
	if err == nil {
		c.h.advanceRollout(c)
	}
	return res, err
}

func (c *call) reportFilter() (store.ErrorReportFilter, error) {
	q := c.r.URL.Query()
	f := store.ErrorReportFilter{ProductID: q.Get("product_id"), DeviceGroupID: q.Get("device_group_id"),
		DeviceID: q.Get("device_id"), Type: q.Get("type")}
	var err error
	if f.Since, err = c.queryTime("since"); err != nil {
		return f, err
	}
	f.Until, err = c.queryTime("until")
	return f, err
}

func listErrorReports(c *call) (any, error) {
	f, err := c.reportFilter()
	if err != nil {
		return nil, err
	}
	return listWith(c, func(o store.ListOptions) (store.Page[store.ErrorReport], error) {
		return c.h.m.ListErrorReports(c.r.Context(), c.p, c.param("tenant"), f, o)
	}, errorreport.Report)
}

func listErrorBuckets(c *call) (any, error) {
	f, err := c.reportFilter()
	if err != nil {
		return nil, err
	}
	limit := DefaultBuckets
	if s := c.r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxBuckets {
			return nil, problem.New(v1.CodeBadRequest, "limit must be an integer from 1 to %d, not %q", MaxBuckets, s)
		}
		limit = n
	}
	bs, truncated, dropped, err := c.h.m.ErrorBuckets(c.r.Context(), c.p, c.param("tenant"), f, false, limit)
	if err != nil {
		return nil, err
	}
	out := v1.ErrorBuckets{Items: make([]v1.ErrorBucket, len(bs)), Truncated: truncated, Dropped: dropped}
	for i, b := range bs {
		out.Items[i] = errorreport.Bucket(b)
	}
	return out, nil
}

func downloadErrorReports(c *call) (any, error) {
	f, err := c.reportFilter()
	if err != nil {
		return nil, err
	}
	format := c.r.URL.Query().Get("format")
	if format != "" && format != "csv" && format != "json" {
		return nil, problem.New(v1.CodeBadRequest, "format must be csv or json, not %q", format)
	}
	bs, truncated, _, err := c.h.m.ErrorBuckets(c.r.Context(), c.p, c.param("tenant"), f, true, errorreport.MaxDownloadRows)
	if err != nil {
		return nil, err
	}
	out := v1.ErrorReportDownload{Rows: make([]v1.ErrorReportRow, len(bs)), Truncated: truncated}
	for i, b := range bs {
		out.Rows[i] = errorreport.Row(b)
	}
	if format == "json" {
		b, err := json.Marshal(out)
		if err != nil {
			return nil, err
		}
		return rawResponse{contentType: "application/json", body: b}, nil
	}
	var buf bytes.Buffer
	if err := errorreport.WriteCSV(&buf, out.Rows); err != nil {
		return nil, err
	}
	return rawResponse{contentType: "text/csv; charset=utf-8", body: buf.Bytes()}, nil
}
