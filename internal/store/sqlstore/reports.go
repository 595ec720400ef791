package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

const reportCols = `e.seq, e.tenant_id, e.device_id, e.id, e.device_group_id, e.product_id, e.deployment_id,
	e.event_type, e.component_id, e.image_id, e.signo, e.exit_code, e.phase, e.reason, e.message, e.at, e.received_at`

func scanReport(s scanner) (store.ErrorReport, error) {
	var r store.ErrorReport
	var at, received sql.NullInt64
	if err := s.Scan(&r.Seq, &r.TenantID, &r.DeviceID, &r.ID, &r.DeviceGroupID, &r.ProductID, &r.DeploymentID,
		&r.Type, &r.ComponentID, &r.ImageID, &r.Signal, &r.ExitCode, &r.Phase, &r.Reason, &r.Message, &at, &received); err != nil {
		return store.ErrorReport{}, err
	}
	r.Time, r.ReceivedAt = timeOf(at), timeOf(received)
	return r, nil
}

// AddErrorReports implements store.Tx.
func (t *tx) AddErrorReports(ctx context.Context, reports []store.ErrorReport) (int, error) {
	checked := map[[2]string]bool{}
	for _, r := range reports {
		k := [2]string{r.TenantID, r.DeviceID}
		if checked[k] {
			continue
		}
		if err := t.checkDevice(ctx, r.TenantID, r.DeviceID); err != nil {
			return 0, fmt.Errorf("store error reports: %w", err)
		}
		checked[k] = true
	}
	stored := 0
	for _, r := range reports {
		n, err := t.exec(ctx, `INSERT INTO error_reports (tenant_id, device_id, id, device_group_id, product_id, deployment_id,
				event_type, component_id, image_id, signo, exit_code, phase, reason, message, at, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, id) DO NOTHING`,
			r.TenantID, r.DeviceID, r.ID, r.DeviceGroupID, r.ProductID, r.DeploymentID, r.Type, r.ComponentID, r.ImageID,
			r.Signal, r.ExitCode, r.Phase, r.Reason, r.Message, timeArg(r.Time), timeArg(r.ReceivedAt))
		if err != nil {
			return 0, t.dbErr(err, fmt.Sprintf("store error report %q of device %q", r.ID, r.DeviceID), store.ErrNotFound)
		}
		stored += int(n)
	}
	return stored, nil
}

// PutErrorReportDrops implements store.Tx.
func (t *tx) PutErrorReportDrops(ctx context.Context, tenantID, deviceID string, dropped int64, at time.Time) error {
	if err := t.checkDevice(ctx, tenantID, deviceID); err != nil {
		return fmt.Errorf("record dropped error reports: %w", err)
	}
	_, err := t.exec(ctx, `INSERT INTO error_report_drops (device_id, tenant_id, dropped, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET dropped = excluded.dropped, updated_at = excluded.updated_at
		WHERE excluded.dropped > error_report_drops.dropped`,
		deviceID, tenantID, dropped, timeArg(at))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("record dropped error reports of device %q", deviceID), store.ErrNotFound)
	}
	return nil
}

// reportWhere selects a tenant's reports by filter.
func reportWhere(tenantID string, f store.ErrorReportFilter) *where {
	w := &where{}
	w.add(`e.tenant_id = ?`, tenantID)
	for _, c := range []struct{ col, val string }{
		{`e.product_id`, f.ProductID},
		{`e.device_group_id`, f.DeviceGroupID},
		{`e.device_id`, f.DeviceID},
		{`e.event_type`, f.Type},
	} {
		if c.val != "" {
			w.add(c.col+` = ?`, c.val)
		}
	}
	if !f.Since.IsZero() {
		w.add(`e.at >= ?`, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		w.add(`e.at < ?`, f.Until.UnixMicro())
	}
	return w
}

// ListErrorReports implements store.Tx.
func (t *tx) ListErrorReports(ctx context.Context, tenantID string, filter store.ErrorReportFilter, opt store.ListOptions) (store.Page[store.ErrorReport], error) {
	opt = opt.Normalize()
	w := reportWhere(tenantID, filter)
	if opt.After != "" {
		after, err := strconv.ParseInt(opt.After, 10, 64)
		if err != nil {
			return store.Page[store.ErrorReport]{}, fmt.Errorf("error report cursor %q is not a sequence number", opt.After)
		}
		w.add(`e.seq < ?`, after)
	}
	p, err := list(ctx, t, opt, `SELECT `+reportCols+` FROM error_reports e`+w.String()+` ORDER BY e.seq DESC LIMIT ?`, w.args,
		scanReport, func(x store.ErrorReport) string { return strconv.FormatInt(x.Seq, 10) })
	if err != nil {
		return p, fmt.Errorf("list error reports of tenant %q: %w", tenantID, err)
	}
	return p, nil
}

// ListErrorBuckets implements store.Tx.
func (t *tx) ListErrorBuckets(ctx context.Context, tenantID string, filter store.ErrorReportFilter, perDevice bool, limit int) ([]store.ErrorBucket, error) {
	limit = max(1, min(limit, store.MaxBucketLimit))
	w := reportWhere(tenantID, filter)
	key := `e.event_type, e.component_id, e.image_id, e.signo, e.exit_code`
	if perDevice {
		key = `e.device_id, ` + key
	}
	rows, err := t.query(ctx, `SELECT `+key+`, COUNT(*), COUNT(DISTINCT e.device_id), MIN(e.at), MAX(e.at)
		FROM error_reports e`+w.String()+` GROUP BY `+key+` ORDER BY COUNT(*) DESC, MAX(e.at) DESC, `+key+` LIMIT ?`,
		append(w.args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("aggregate error reports of tenant %q: %w", tenantID, err)
	}
	defer rows.Close()
	out := []store.ErrorBucket{}
	for rows.Next() {
		var b store.ErrorBucket
		var first, last sql.NullInt64
		dest := []any{&b.Type, &b.ComponentID, &b.ImageID, &b.Signal, &b.ExitCode, &b.Count, &b.Devices, &first, &last}
		if perDevice {
			dest = append([]any{&b.DeviceID}, dest...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("aggregate error reports of tenant %q: %w", tenantID, err)
		}
		b.FirstSeen, b.LastSeen = timeOf(first), timeOf(last)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate error reports of tenant %q: %w", tenantID, err)
	}
	return out, nil
}

// CountDroppedErrorReports implements store.Tx.
func (t *tx) CountDroppedErrorReports(ctx context.Context, tenantID string, filter store.ErrorReportFilter) (int64, error) {
	w := &where{}
	w.add(`x.tenant_id = ?`, tenantID)
	if filter.DeviceID != "" {
		w.add(`x.device_id = ?`, filter.DeviceID)
	}
	if filter.DeviceGroupID != "" {
		w.add(`d.device_group_id = ?`, filter.DeviceGroupID)
	}
	if filter.ProductID != "" {
		w.add(`g.product_id = ?`, filter.ProductID)
	}
	var n int64
	err := t.queryRow(ctx, `SELECT CAST(COALESCE(SUM(x.dropped), 0) AS BIGINT) FROM error_report_drops x
		JOIN devices d ON d.id = x.device_id LEFT JOIN device_groups g ON g.id = d.device_group_id`+w.String(), w.args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dropped error reports of tenant %q: %w", tenantID, err)
	}
	return n, nil
}

// DeleteErrorReportsBefore implements store.Tx.
func (t *tx) DeleteErrorReportsBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	n, err := t.exec(ctx, `DELETE FROM error_reports WHERE seq IN
		(SELECT seq FROM error_reports WHERE received_at < ? ORDER BY received_at, seq LIMIT ?)`, before.UnixMicro(), max(limit, 0))
	if err != nil {
		return 0, fmt.Errorf("delete error reports received before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return int(n), nil
}
