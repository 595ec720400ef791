package server

import (
	"context"
	"fmt"
	"io"
	"os"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

// MaxReleasesFile bounds the OS releases file.
const MaxReleasesFile = 4 << 20

// releasesFile is the format of ca.os_releases_file.
type releasesFile struct {
	Releases []struct {
		Tenant       string            `json:"tenant"` // name or ID
		Version      string            `json:"version"`
		Description  string            `json:"description"`
		Measurements map[string]string `json:"measurements"`
	} `json:"releases"`
}

// registerReleases registers the releases the file names, through the management plane as
// the "system" actor, so they are validated and audited like any other.
func registerReleases(ctx context.Context, m *manage.Manager, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("OS releases file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxReleasesFile+1))
	if err != nil {
		return 0, fmt.Errorf("OS releases file: %w", err)
	}
	if len(b) > MaxReleasesFile {
		return 0, fmt.Errorf("OS releases file %s is larger than %d bytes", path, MaxReleasesFile)
	}
	var doc releasesFile
	if err := strictjson.Decode(b, &doc); err != nil {
		return 0, fmt.Errorf("OS releases file %s: %w", path, err)
	}
	n := 0
	for i, r := range doc.Releases {
		created, err := m.EnsureOSRelease(ctx, r.Tenant, v1.OSReleaseCreate{Version: r.Version, Description: r.Description, Measurements: r.Measurements})
		if err != nil {
			return n, fmt.Errorf("OS releases file %s, release %d (%s): %w", path, i, r.Version, err)
		}
		if created {
			n++
		}
	}
	return n, nil
}
