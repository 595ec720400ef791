package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/rampart-iot/rampart/internal/store"
)

const auditCols = `a.seq, a.tenant_id, a.at, a.actor_id, a.actor_name, a.action, a.resource_type,
	a.resource_id, a.result, a.error_code, a.message, a.details`

func scanAudit(s scanner) (store.AuditEntry, error) {
	var x store.AuditEntry
	var at sql.NullInt64
	if err := s.Scan(&x.Seq, &x.TenantID, &at, &x.ActorID, &x.ActorName, &x.Action, &x.ResourceType,
		&x.ResourceID, &x.Result, &x.ErrorCode, &x.Message, &x.Details); err != nil {
		return store.AuditEntry{}, err
	}
	x.Time = timeOf(at)
	return x, nil
}

// AppendAudit implements store.Tx. It ignores e.Seq.
func (t *tx) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	var seq int64
	err := t.queryRow(ctx, `INSERT INTO audit (tenant_id, at, actor_id, actor_name, action, resource_type,
			resource_id, result, error_code, message, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING seq`,
		e.TenantID, timeArg(e.Time), e.ActorID, e.ActorName, e.Action, e.ResourceType,
		e.ResourceID, e.Result, e.ErrorCode, e.Message, e.Details).Scan(&seq)
	if err != nil {
		return 0, t.dbErr(err, "append audit entry", nil)
	}
	return seq, nil
}

// ListAudit implements store.Tx. The After of a page is the decimal sequence number of the
// last entry of the page before. Since and Until are compared at microsecond precision, as
// the times are stored.
func (t *tx) ListAudit(ctx context.Context, filter store.AuditFilter, opt store.ListOptions) (store.Page[store.AuditEntry], error) {
	opt = opt.Normalize()
	var w where
	w.add(`a.tenant_id = ?`, filter.TenantID)
	for _, f := range []struct{ col, val string }{
		{`a.actor_name`, filter.ActorName},
		{`a.action`, filter.Action},
		{`a.resource_type`, filter.ResourceType},
		{`a.resource_id`, filter.ResourceID},
		{`a.result`, filter.Result},
	} {
		if f.val != "" {
			w.add(f.col+` = ?`, f.val)
		}
	}
	if !filter.Since.IsZero() {
		w.add(`a.at >= ?`, filter.Since.UnixMicro())
	}
	if !filter.Until.IsZero() {
		w.add(`a.at < ?`, filter.Until.UnixMicro())
	}
	if opt.After != "" {
		after, err := strconv.ParseInt(opt.After, 10, 64)
		if err != nil {
			return store.Page[store.AuditEntry]{}, fmt.Errorf("audit log cursor %q is not a sequence number", opt.After)
		}
		w.add(`a.seq < ?`, after)
	}
	p, err := list(ctx, t, opt, `SELECT `+auditCols+` FROM audit a`+w.String()+` ORDER BY a.seq DESC LIMIT ?`, w.args,
		scanAudit, func(x store.AuditEntry) string { return strconv.FormatInt(x.Seq, 10) })
	if err != nil {
		return p, fmt.Errorf("list audit log: %w", err)
	}
	return p, nil
}
