package manage

import (
	"context"
	"fmt"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// checkReportFilter refuses a filter no report can match for a reason the caller should hear:
// an unknown event type, or a time window that ends before it starts.
func checkReportFilter(f store.ErrorReportFilter) error {
	var d []v1.ErrorDetail
	if f.Type != "" && !errorreport.KnownType(f.Type) {
		d = append(d, v1.ErrorDetail{Field: "type", Message: fmt.Sprintf("must be %s, not %q", errorreport.Types, f.Type)})
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		d = append(d, v1.ErrorDetail{Field: "until", Message: "must be after since"})
	}
	if len(d) > 0 {
		return problem.Invalid(d...)
	}
	return nil
}

// ListErrorReports lists the tenant's error reports that f selects, newest first.
func (m *Manager) ListErrorReports(ctx context.Context, p *authz.Principal, tenantID string, f store.ErrorReportFilter, opt store.ListOptions) (store.Page[store.ErrorReport], error) {
	if err := m.read(ctx, p, tenantID, authz.ErrorReportRead); err != nil {
		return store.Page[store.ErrorReport]{}, err
	}
	if err := checkReportFilter(f); err != nil {
		return store.Page[store.ErrorReport]{}, err
	}
	return m.store.ListErrorReports(ctx, tenantID, f, opt)
}

// ErrorBuckets aggregates the tenant's error reports that f selects into buckets (per device
// too when perDevice), most events first, at most limit of them; truncated says there were
// more. dropped is how many events the selected devices' queues dropped before upload.
func (m *Manager) ErrorBuckets(ctx context.Context, p *authz.Principal, tenantID string, f store.ErrorReportFilter, perDevice bool, limit int) (buckets []store.ErrorBucket, truncated bool, dropped int64, err error) {
	if err := m.read(ctx, p, tenantID, authz.ErrorReportRead); err != nil {
		return nil, false, 0, err
	}
	if err := checkReportFilter(f); err != nil {
		return nil, false, 0, err
	}
	limit = max(1, min(limit, store.MaxBucketLimit-1))
	buckets, err = m.store.ListErrorBuckets(ctx, tenantID, f, perDevice, limit+1)
	if err != nil {
		return nil, false, 0, err
	}
	if len(buckets) > limit {
		buckets, truncated = buckets[:limit], true
	}
	dropped, err = m.store.CountDroppedErrorReports(ctx, tenantID, f)
	if err != nil {
		return nil, false, 0, err
	}
	return buckets, truncated, dropped, nil
}
