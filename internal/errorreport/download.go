package errorreport

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/store"
)

// MaxDownloadRows bounds the error-report download: rows are per device and bucket, most
// events first.
const MaxDownloadRows = 10000

// CSVHeader is the download's header row, Azure Sphere's columns.
var CSVHeader = []string{"Device ID", "Event Type", "Event Class", "Event Count", "Description", "Start Time", "End Time"}

func exitCodeOf(n int) *int {
	if n == store.NoExitCode {
		return nil
	}
	return &n
}

// Report renders a stored report for the API.
func Report(r store.ErrorReport) v1.ErrorReport {
	exit := exitCodeOf(r.ExitCode)
	return v1.ErrorReport{Seq: r.Seq, DeviceID: r.DeviceID, DeviceGroupID: r.DeviceGroupID, ProductID: r.ProductID,
		DeploymentID: r.DeploymentID, ReceivedAt: r.ReceivedAt, ID: r.ID, Type: r.Type, Class: Class(r.Type), Time: r.Time,
		ComponentID: r.ComponentID, ImageID: r.ImageID, Signal: r.Signal, ExitCode: exit, Phase: r.Phase, Reason: r.Reason,
		Message: r.Message, Description: Description(r.Type, r.Signal, exit, r.ComponentID, r.ImageID, r.Phase, r.Reason)}
}

// Bucket renders a bucket for the API.
func Bucket(b store.ErrorBucket) v1.ErrorBucket {
	exit := exitCodeOf(b.ExitCode)
	return v1.ErrorBucket{DeviceID: b.DeviceID, Type: b.Type, Class: Class(b.Type), ComponentID: b.ComponentID,
		ImageID: b.ImageID, Signal: b.Signal, ExitCode: exit, Count: b.Count, Devices: b.Devices, FirstSeen: b.FirstSeen,
		LastSeen: b.LastSeen, Description: Description(b.Type, b.Signal, exit, b.ComponentID, b.ImageID, "", "")}
}

// Row renders a per-device bucket as a download row.
func Row(b store.ErrorBucket) v1.ErrorReportRow {
	exit := exitCodeOf(b.ExitCode)
	return v1.ErrorReportRow{DeviceID: b.DeviceID, EventType: EventType(b.Type, exit), EventClass: Class(b.Type),
		EventCount: b.Count, Description: Description(b.Type, b.Signal, exit, b.ComponentID, b.ImageID, "", ""),
		StartTime: b.FirstSeen, EndTime: b.LastSeen}
}

// WriteCSV writes rows as CSV with CSVHeader, times in RFC 3339, UTC.
func WriteCSV(w io.Writer, rows []v1.ErrorReportRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{r.DeviceID, r.EventType, r.EventClass, strconv.FormatInt(r.EventCount, 10), r.Description,
			r.StartTime.UTC().Format(time.RFC3339), r.EndTime.UTC().Format(time.RFC3339)}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
