package console

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"

	"github.com/rampart-iot/rampart/internal/store"
)

// Bounds of the fleet overview: it classifies at most overviewScan devices (in pages of
// overviewPage) and shows the first overviewGroups groups; the page says when it stopped short.
const (
	overviewScan     = 10000
	overviewPage     = 1000
	overviewFailures = 10
	overviewGroups   = 50
)

type stateCounts struct {
	Attested, Failing, Never, Disabled int
}

type groupRow struct {
	Group      store.DeviceGroup
	Product    string
	Devices    int
	Deployment *store.Deployment // the current one, nil if none
	Rollout    *store.Rollout    // the group's running or paused rollout, nil if none
	CrashFree  string            // the current deployment's crash-free hours, "" if none recorded
}

type overviewView struct {
	Total      int
	Counts     stateCounts
	Scanned    int
	Truncated  bool // more devices than the overview classifies
	Failures   []store.Device
	Groups     []groupRow
	MoreGroups bool
	Rollouts   int               // active rollouts among the groups shown
	Hours      store.CohortHours // the current deployments' of the groups shown, summed
	CrashFree  string            // their crash-free hours, "" if none recorded
	Crashes    []bucketRow       // the busiest AppCrash buckets of the last 24 hours
	CrashesURL string
}

// overview shows device counts by state, the latest attestation failures and each group's
// current deployment.
func (h *Handler) overview(c *call) error {
	ctx := c.r.Context()
	var ov overviewView
	var err error
	if ov.Total, err = h.m.CountDevices(ctx, c.p, c.tenant.ID, store.DeviceFilter{}); err != nil {
		return err
	}
	after := ""
	for ov.Scanned < overviewScan {
		page, err := h.m.ListDevices(ctx, c.p, c.tenant.ID, store.DeviceFilter{}, store.ListOptions{After: after, Limit: overviewPage})
		if err != nil {
			return err
		}
		for _, d := range page.Items {
			ov.Scanned++
			switch deviceState(d) {
			case stateDisabled:
				ov.Counts.Disabled++
			case stateNever:
				ov.Counts.Never++
			case stateFailing:
				ov.Counts.Failing++
				ov.Failures = append(ov.Failures, d)
			default:
				ov.Counts.Attested++
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
		if ov.Scanned >= overviewScan {
			ov.Truncated = true
		}
	}
	sort.SliceStable(ov.Failures, func(i, j int) bool { return ov.Failures[i].LastAttestation.After(ov.Failures[j].LastAttestation) })
	if len(ov.Failures) > overviewFailures {
		ov.Failures = ov.Failures[:overviewFailures]
	}

	groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{}, store.ListOptions{Limit: overviewGroups})
	if err != nil {
		return err
	}
	ov.MoreGroups = groups.Next != ""
	products := map[string]string{}
	for _, g := range groups.Items {
		row := groupRow{Group: g}
		if name, ok := products[g.ProductID]; ok {
			row.Product = name
		} else if p, err := h.m.GetProduct(ctx, c.p, c.tenant.ID, g.ProductID); err == nil {
			products[g.ProductID], row.Product = p.Name, p.Name
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if row.Devices, err = h.m.CountDevices(ctx, c.p, c.tenant.ID, store.DeviceFilter{DeviceGroupID: g.ID}); err != nil {
			return err
		}
		deps, _, err := h.m.ListDeployments(ctx, c.p, c.tenant.ID, store.DeploymentFilter{DeviceGroupID: g.ID}, store.ListOptions{Limit: 1})
		if err != nil {
			return err
		}
		if len(deps.Items) > 0 { // newest first: the group's current deployment
			d := deps.Items[0]
			row.Deployment = &d
			hours, err := h.m.DeploymentHealth(ctx, c.p, c.tenant.ID, d.ID)
			if err != nil {
				return err
			}
			row.CrashFree = crashFree(hours)
			ov.Hours.Devices += hours.Devices
			ov.Hours.Hours += hours.Hours
			ov.Hours.CrashedHours += hours.CrashedHours
		}
		switch r, err := h.m.ActiveRollout(ctx, c.p, c.tenant.ID, g.ID); {
		case err == nil:
			row.Rollout = &r
			ov.Rollouts++
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		ov.Groups = append(ov.Groups, row)
	}
	ov.CrashFree = crashFree(ov.Hours)
	crashes, _, _, err := h.m.ErrorBuckets(ctx, c.p, c.tenant.ID, store.ErrorReportFilter{Type: v1.EventAppCrash, Since: h.now().Add(-24 * time.Hour)}, false, recentCrashes)
	if err != nil {
		return err
	}
	for _, b := range crashes {
		ov.Crashes = append(ov.Crashes, bucketRow{Bucket: b, URL: c.tenantPath("error-reports/bucket") + "?" + keyOf(b).query("24h")})
	}
	ov.CrashesURL = c.tenantPath("error-reports") + "?type=" + v1.EventAppCrash + "&range=24h"
	v := h.view(c, "Fleet overview", "overview")
	v.Data = ov
	h.render(c.w, c.r, http.StatusOK, "overview", v)
	return nil
}

// crashFree formats a cohort's crash-free hours, "" until an hour is recorded.
func crashFree(h store.CohortHours) string {
	if h.Hours == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f%%", 100*float64(h.Hours-h.CrashedHours)/float64(h.Hours))
}
