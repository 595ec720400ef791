package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// SetUserPassword implements store.Tx.
func (t *tx) SetUserPassword(ctx context.Context, userID, hash string, at time.Time) error {
	n, err := t.exec(ctx, `UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?`, hash, timeArg(at), userID)
	if err != nil {
		return fmt.Errorf("set the password of user %q: %w", userID, err)
	}
	if n == 0 {
		return fmt.Errorf("user %q: %w", userID, store.ErrNotFound)
	}
	return nil
}

// GetUserPassword implements store.Tx.
func (t *tx) GetUserPassword(ctx context.Context, userID string) (store.UserPassword, error) {
	var p store.UserPassword
	var at sql.NullInt64
	if err := t.queryRow(ctx, `SELECT password_hash, password_changed_at FROM users WHERE id = ?`, userID).Scan(&p.Hash, &at); err != nil {
		return store.UserPassword{}, notFound(err, fmt.Sprintf("user %q", userID))
	}
	p.ChangedAt = timeOf(at)
	return p, nil
}

const consoleSessionCols = `id_hash, user_id, token_id, csrf, created_at, last_seen_at, expires_at`

// CreateConsoleSession implements store.Tx.
func (t *tx) CreateConsoleSession(ctx context.Context, s store.ConsoleSession) error {
	if len(s.IDHash) == 0 {
		return fmt.Errorf("create a console session: no ID hash")
	}
	if err := t.checkUser(ctx, s.UserID); err != nil {
		return fmt.Errorf("create a console session: %w", err)
	}
	_, err := t.exec(ctx, `INSERT INTO console_sessions (`+consoleSessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		s.IDHash, s.UserID, s.TokenID, s.CSRF, s.CreatedAt.UnixMicro(), s.LastSeenAt.UnixMicro(), s.ExpiresAt.UnixMicro())
	if err != nil {
		return t.dbErr(err, "create a console session", store.ErrNotFound)
	}
	return nil
}

// GetConsoleSession implements store.Tx.
func (t *tx) GetConsoleSession(ctx context.Context, idHash []byte) (store.ConsoleSession, error) {
	var s store.ConsoleSession
	var created, seen, expires int64
	err := t.queryRow(ctx, `SELECT `+consoleSessionCols+` FROM console_sessions WHERE id_hash = ?`, idHash).
		Scan(&s.IDHash, &s.UserID, &s.TokenID, &s.CSRF, &created, &seen, &expires)
	if err != nil {
		return store.ConsoleSession{}, notFound(err, "console session")
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = time.UnixMicro(created).UTC(), time.UnixMicro(seen).UTC(), time.UnixMicro(expires).UTC()
	return s, nil
}

// TouchConsoleSession implements store.Tx.
func (t *tx) TouchConsoleSession(ctx context.Context, idHash []byte, at time.Time) error {
	n, err := t.exec(ctx, `UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?`, at.UnixMicro(), idHash)
	if err != nil {
		return fmt.Errorf("touch a console session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("console session: %w", store.ErrNotFound)
	}
	return nil
}

// DeleteConsoleSession implements store.Tx.
func (t *tx) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	if _, err := t.exec(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("delete a console session: %w", err)
	}
	return nil
}

// DeleteUserConsoleSessions implements store.Tx.
func (t *tx) DeleteUserConsoleSessions(ctx context.Context, userID string, keep []byte) (int, error) {
	if keep == nil {
		keep = []byte{}
	}
	n, err := t.exec(ctx, `DELETE FROM console_sessions WHERE user_id = ? AND id_hash <> ?`, userID, keep)
	if err != nil {
		return 0, fmt.Errorf("delete the console sessions of user %q: %w", userID, err)
	}
	return int(n), nil
}

// DeleteExpiredConsoleSessions implements store.Tx.
func (t *tx) DeleteExpiredConsoleSessions(ctx context.Context, idleBefore, now time.Time, limit int) (int, error) {
	n, err := t.exec(ctx, `DELETE FROM console_sessions WHERE id_hash IN
		(SELECT id_hash FROM console_sessions WHERE last_seen_at < ? OR expires_at <= ? LIMIT ?)`,
		idleBefore.UnixMicro(), now.UnixMicro(), max(limit, 0))
	if err != nil {
		return 0, fmt.Errorf("delete expired console sessions: %w", err)
	}
	return int(n), nil
}

// CountErrorReportsByBin implements store.Tx.
func (t *tx) CountErrorReportsByBin(ctx context.Context, tenantID string, filter store.ErrorReportFilter, only *store.ErrorBucket,
	since time.Time, width time.Duration, bins, limit int) ([]store.ErrorBinCount, error) {
	if width < time.Microsecond || bins < 1 {
		return nil, fmt.Errorf("count error reports by bin: a bin of %s, %d bins", width, bins)
	}
	limit = max(1, min(limit, store.MaxBinCounts))
	filter.Since, filter.Until = since, since.Add(time.Duration(bins)*width)
	w := reportWhere(tenantID, filter)
	if only != nil {
		w.add(`e.event_type = ?`, only.Type)
		w.add(`e.component_id = ?`, only.ComponentID)
		w.add(`e.image_id = ?`, only.ImageID)
		w.add(`e.signo = ?`, only.Signal)
		w.add(`e.exit_code = ?`, only.ExitCode)
	}
	key := `e.event_type, e.component_id, e.image_id, e.signo, e.exit_code`
	bin := `(e.at - ?) / ?`
	args := append([]any{since.UnixMicro(), width.Microseconds()}, w.args...)
	rows, err := t.query(ctx, `SELECT `+key+`, `+bin+` AS bin, COUNT(*) FROM error_reports e`+w.String()+
		` GROUP BY `+key+`, bin ORDER BY `+key+`, bin LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("count error reports of tenant %q by bin: %w", tenantID, err)
	}
	defer rows.Close()
	out := []store.ErrorBinCount{}
	for rows.Next() {
		var c store.ErrorBinCount
		if err := rows.Scan(&c.Type, &c.ComponentID, &c.ImageID, &c.Signal, &c.ExitCode, &c.Bin, &c.Count); err != nil {
			return nil, fmt.Errorf("count error reports of tenant %q by bin: %w", tenantID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count error reports of tenant %q by bin: %w", tenantID, err)
	}
	return out, nil
}

// SetUserPassword implements store.Tx.
func (s *DB) SetUserPassword(ctx context.Context, userID, hash string, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.SetUserPassword(ctx, userID, hash, at) })
}

// GetUserPassword implements store.Tx.
func (s *DB) GetUserPassword(ctx context.Context, userID string) (store.UserPassword, error) {
	return s.read.GetUserPassword(ctx, userID)
}

// CreateConsoleSession implements store.Tx.
func (s *DB) CreateConsoleSession(ctx context.Context, cs store.ConsoleSession) error {
	return s.write(ctx, func(w *tx) error { return w.CreateConsoleSession(ctx, cs) })
}

// GetConsoleSession implements store.Tx.
func (s *DB) GetConsoleSession(ctx context.Context, idHash []byte) (store.ConsoleSession, error) {
	return s.read.GetConsoleSession(ctx, idHash)
}

// TouchConsoleSession implements store.Tx.
func (s *DB) TouchConsoleSession(ctx context.Context, idHash []byte, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.TouchConsoleSession(ctx, idHash, at) })
}

// DeleteConsoleSession implements store.Tx.
func (s *DB) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	return s.write(ctx, func(w *tx) error { return w.DeleteConsoleSession(ctx, idHash) })
}

// DeleteUserConsoleSessions implements store.Tx.
func (s *DB) DeleteUserConsoleSessions(ctx context.Context, userID string, keep []byte) (n int, err error) {
	err = s.write(ctx, func(w *tx) error {
		var err error
		n, err = w.DeleteUserConsoleSessions(ctx, userID, keep)
		return err
	})
	return n, err
}

// DeleteExpiredConsoleSessions implements store.Tx.
func (s *DB) DeleteExpiredConsoleSessions(ctx context.Context, idleBefore, now time.Time, limit int) (n int, err error) {
	err = s.write(ctx, func(w *tx) error {
		var err error
		n, err = w.DeleteExpiredConsoleSessions(ctx, idleBefore, now, limit)
		return err
	})
	return n, err
}

// CountErrorReportsByBin implements store.Tx.
func (s *DB) CountErrorReportsByBin(ctx context.Context, tenantID string, filter store.ErrorReportFilter, only *store.ErrorBucket,
	since time.Time, width time.Duration, bins, limit int) ([]store.ErrorBinCount, error) {
	return s.read.CountErrorReportsByBin(ctx, tenantID, filter, only, since, width, bins, limit)
}
