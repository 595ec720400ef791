package errorreport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/store"
)

// Ingest validates a device's upload and stores it in one transaction: each event once per
// device (an event ID the service has is skipped, so a retried upload does not duplicate), with
// the device's group, that group's product and current deployment as they are now, and the
// device's dropped total. dev is the device as its certificate was checked; now is the time of
// receipt. onNew, if not nil, hears within the transaction of each bucket the upload opens.
func Ingest(ctx context.Context, st store.Store, dev store.Device, b v1.ReportBatch, now time.Time, onNew NewBucketFunc) (v1.ReportResult, error) {
	if err := Validate(b); err != nil {
		return v1.ReportResult{}, err
	}
	now = now.UTC().Truncate(time.Microsecond)
	var res v1.ReportResult
	err := st.Update(ctx, func(tx store.Tx) error {
		d, err := tx.GetDevice(ctx, dev.TenantID, dev.ID)
		if err != nil {
			return fmt.Errorf("reading the reporting device: %w", err)
		}
		var productID, deploymentID string
		if d.DeviceGroupID != "" {
			g, err := tx.GetDeviceGroup(ctx, d.TenantID, d.DeviceGroupID)
			if err != nil {
				return fmt.Errorf("reading the reporting device's group: %w", err)
			}
			productID = g.ProductID
			dep, err := tx.CurrentDeployment(ctx, d.TenantID, d.DeviceGroupID)
			switch {
			case err == nil:
				deploymentID = dep.ID
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("reading the reporting device's deployment: %w", err)
			}
		}
		rs := make([]store.ErrorReport, len(b.Events))
		for i, e := range b.Events {
			at := e.Time
			if at.After(now) {
				at = now
			}
			exit := store.NoExitCode
			if e.ExitCode != nil {
				exit = *e.ExitCode
			}
			rs[i] = store.ErrorReport{TenantID: d.TenantID, DeviceID: d.ID, ID: strings.ToLower(e.ID),
				DeviceGroupID: d.DeviceGroupID, ProductID: productID, DeploymentID: deploymentID, Type: e.Type,
				ComponentID: strings.ToLower(e.ComponentID), ImageID: strings.ToLower(e.ImageID), Signal: e.Signal,
				ExitCode: exit, Phase: e.Phase, Reason: e.Reason, Message: e.Message, Time: at, ReceivedAt: now}
		}
		var opened []store.ErrorReport
		if onNew != nil {
			if opened, err = newBuckets(ctx, tx, rs); err != nil {
				return err
			}
		}
		n, err := tx.AddErrorReports(ctx, rs)
		if err != nil {
			return err
		}
		for _, r := range opened {
			if err := onNew(ctx, tx, r); err != nil {
				return err
			}
		}
		if err := markCrashedHours(ctx, tx, rs, now); err != nil {
			return err
		}
		res = v1.ReportResult{Accepted: n, Duplicates: len(rs) - n}
		if b.Dropped > 0 {
			return tx.PutErrorReportDrops(ctx, d.TenantID, d.ID, b.Dropped, now)
		}
		return nil
	})
	if err != nil {
		return v1.ReportResult{}, err
	}
	return res, nil
}

// NewBucketFunc hears, within an ingest's transaction, of a bucket the upload opened: first is
// the upload's first event in a bucket (type, component, image, signal, exit code) in which the
// tenant had no report before (within the retention). It may write through tx; an error it
// returns fails the upload.
type NewBucketFunc func(ctx context.Context, tx store.Tx, first store.ErrorReport) error

// newBuckets returns the first of rs in each bucket the tenant has no report in yet.
func newBuckets(ctx context.Context, tx store.Tx, rs []store.ErrorReport) ([]store.ErrorReport, error) {
	seen := map[store.ErrorBucket]bool{}
	var out []store.ErrorReport
	for _, r := range rs {
		k := store.ErrorBucket{Type: r.Type, ComponentID: r.ComponentID, ImageID: r.ImageID, Signal: r.Signal, ExitCode: r.ExitCode}
		if seen[k] {
			continue
		}
		seen[k] = true
		has, err := tx.HasErrorBucket(ctx, r.TenantID, k)
		if err != nil {
			return nil, err
		}
		if !has {
			out = append(out, r)
		}
	}
	return out, nil
}

// DefaultRetention is how long the service keeps error reports unless configured otherwise.
const DefaultRetention = 90 * 24 * time.Hour

// cleanupBatch and cleanupBatches bound one Cleanup: at most this many deletes of this many
// reports, so that a backlog is worked off over several calls without one long transaction.
const (
	cleanupBatch   = 1000
	cleanupBatches = 100
)

// Cleanup deletes the reports received more than retention before now (DefaultRetention if
// retention is not positive), at most 100,000 in one call, and returns how many it deleted;
// then the device-hours older than the same retention. The janitor calls it every minute.
func Cleanup(ctx context.Context, st store.Store, now time.Time, retention time.Duration) (int, error) {
	n, err := cleanupReports(ctx, st, now, retention)
	if err != nil {
		return n, err
	}
	if retention <= 0 {
		retention = DefaultRetention
	}
	if _, err := st.DeleteDeviceHoursBefore(ctx, now.Add(-retention)); err != nil {
		return n, fmt.Errorf("deleting old device-hours: %w", err)
	}
	return n, nil
}

func cleanupReports(ctx context.Context, st store.Store, now time.Time, retention time.Duration) (int, error) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	before := now.Add(-retention)
	total := 0
	for range cleanupBatches {
		n, err := st.DeleteErrorReportsBefore(ctx, before, cleanupBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < cleanupBatch {
			break
		}
	}
	return total, nil
}

// crashedHoursBack bounds how far back a crash's time may mark a device-hour: a device's
// clock, or a long-queued event, cannot rewrite old cohorts' crash-free hours.
const crashedHoursBack = 7 * 24 * time.Hour

// markCrashedHours marks each hour in which an application crashed or was killed for memory,
// for the crash-free hours of the device's deployment cohort. A retried upload marks the
// same hours again, which changes nothing.
func markCrashedHours(ctx context.Context, tx store.Tx, rs []store.ErrorReport, now time.Time) error {
	seen := map[int64]bool{}
	for _, r := range rs {
		if r.Type != v1.EventAppCrash && r.Type != v1.EventAppOOM {
			continue
		}
		at := r.Time
		if at.Before(now.Add(-crashedHoursBack)) {
			continue
		}
		if h := at.Unix() / 3600; !seen[h] {
			seen[h] = true
			if err := tx.MarkCrashedHour(ctx, r.TenantID, r.DeviceID, at); err != nil {
				return err
			}
		}
	}
	return nil
}
