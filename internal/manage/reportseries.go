package manage

import (
	"context"
	"time"

	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// ErrorReportSeries counts the tenant's error reports that f selects per bucket and per time
// bin (store.CountErrorReportsByBin), for charts of events over time; only, if set, limits it
// to one bucket. truncated says there were more than store.MaxBinCounts rows.
func (m *Manager) ErrorReportSeries(ctx context.Context, p *authz.Principal, tenantID string, f store.ErrorReportFilter, only *store.ErrorBucket,
	since time.Time, width time.Duration, bins int) (counts []store.ErrorBinCount, truncated bool, err error) {
	if err := m.read(ctx, p, tenantID, authz.ErrorReportRead); err != nil {
		return nil, false, err
	}
	if err := checkReportFilter(f); err != nil {
		return nil, false, err
	}
	counts, err = m.store.CountErrorReportsByBin(ctx, tenantID, f, only, since, width, bins, store.MaxBinCounts)
	if err != nil {
		return nil, false, err
	}
	return counts, len(counts) >= store.MaxBinCounts, nil
}
