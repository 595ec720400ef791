// Package eventlog is the security monitor's measurement log: the record of every digest the
// monitor extended into a PCR, in order, so that a verifier can replay the log and compare the
// result with PCR values a TPM quoted. Records have the shape of TCG Canonical Event Log
// (CEL-JSON) records, with content type "rampart".
//
// Trust: a log proves nothing by itself. It is untrusted until its replay matches PCR values
// signed by the device's attestation key; Parse only checks its form and bounds it.
package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/rampart-iot/rampart/internal/strictjson"
)

// Version is the log format version this package writes and reads.
const Version = 1

// ContentType marks records written by the Rampart security monitor.
const ContentType = "rampart"

// DefaultPCR is where the security monitor extends its measurements (see docs/ATTESTATION.md).
const DefaultPCR = 14

// Limits on a log.
const (
	MaxSize    = 1 << 20
	MaxRecords = 1024
	NumPCRs    = 24
)

// Names of the security monitor's measurements.
const (
	MeasurePolicy   = "policy"    // the agent's security policy
	MeasureAgent    = "agent"     // the rampart-agent binary
	MeasureOSBundle = "os-bundle" // the active OS bundle
)

// Log is a measurement log.
type Log struct {
	Version int      `json:"version"`
	Records []Record `json:"records"`
}

// Record is one extend operation.
type Record struct {
	RecNum      int      `json:"recnum"`
	PCR         int      `json:"pcr"`
	Digests     []Digest `json:"digests"`
	ContentType string   `json:"content_type"`
	Content     Content  `json:"content"`
}

// Digest is a digest in one hash algorithm; only sha256 is used.
type Digest struct {
	HashAlg string `json:"hashAlg"`
	Digest  string `json:"digest"` // lowercase hex
}

// Content says what was measured.
type Content struct {
	// Name is the measurement's name, such as "os-bundle"; unique within a log.
	Name string `json:"name"`
	// Description is free text for people (a path, a version); never used for decisions.
	Description string `json:"description,omitempty"`
}

// namePattern is compiled on first use: its bounded repetition makes a large program, which a
// process that never validates a log (the cloud broker) should not carry.
var namePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`) })

// New returns an empty log.
func New() *Log { return &Log{Version: Version, Records: []Record{}} }

// Append records that digest (32 bytes, SHA-256) was extended into pcr as measurement name.
func (l *Log) Append(pcr int, name, description string, digest []byte) error {
	if len(digest) != sha256.Size {
		return fmt.Errorf("eventlog: digest of %q is %d bytes, want %d", name, len(digest), sha256.Size)
	}
	r := Record{RecNum: len(l.Records), PCR: pcr, ContentType: ContentType,
		Digests: []Digest{{HashAlg: "sha256", Digest: hex.EncodeToString(digest)}},
		Content: Content{Name: name, Description: description}}
	if err := l.checkRecord(len(l.Records), r, map[string]bool{}); err != nil {
		return err
	}
	for _, old := range l.Records {
		if old.Content.Name == name {
			return fmt.Errorf("eventlog: measurement %q is already in the log", name)
		}
	}
	l.Records = append(l.Records, r)
	return nil
}

// Marshal encodes the log.
func (l *Log) Marshal() ([]byte, error) { return json.Marshal(l) }

// Parse decodes and checks a log.
func Parse(b []byte) (*Log, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("event log is %d bytes; the limit is %d", len(b), MaxSize)
	}
	// Count records cheaply before decoding them all.
	if n := bytes.Count(b, []byte(`"recnum"`)); n > MaxRecords {
		return nil, fmt.Errorf("event log has %d records; the limit is %d", n, MaxRecords)
	}
	var l Log
	if err := strictjson.Decode(b, &l); err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	if l.Version != Version {
		return nil, fmt.Errorf("event log version %d; this software reads version %d", l.Version, Version)
	}
	if len(l.Records) > MaxRecords {
		return nil, fmt.Errorf("event log has %d records; the limit is %d", len(l.Records), MaxRecords)
	}
	names := map[string]bool{}
	for i, r := range l.Records {
		if err := l.checkRecord(i, r, names); err != nil {
			return nil, err
		}
	}
	return &l, nil
}

func (l *Log) checkRecord(i int, r Record, names map[string]bool) error {
	switch {
	case r.RecNum != i:
		return fmt.Errorf("event log record %d has recnum %d", i, r.RecNum)
	case r.PCR < 0 || r.PCR >= NumPCRs:
		return fmt.Errorf("event log record %d: PCR %d out of range", i, r.PCR)
	case r.ContentType != ContentType:
		return fmt.Errorf("event log record %d: content type %q, want %q", i, r.ContentType, ContentType)
	case len(r.Digests) != 1 || r.Digests[0].HashAlg != "sha256":
		return fmt.Errorf("event log record %d: want exactly one sha256 digest", i)
	case !namePattern().MatchString(r.Content.Name):
		return fmt.Errorf("event log record %d: measurement name %q is not 1-32 of [a-z0-9-]", i, r.Content.Name)
	case len(r.Content.Description) > 256:
		return fmt.Errorf("event log record %d: description longer than 256 bytes", i)
	case names[r.Content.Name]:
		return fmt.Errorf("event log record %d: measurement %q appears twice", i, r.Content.Name)
	}
	d, err := hex.DecodeString(r.Digests[0].Digest)
	if err != nil || len(d) != sha256.Size || hex.EncodeToString(d) != r.Digests[0].Digest {
		return fmt.Errorf("event log record %d: digest is not 64 lowercase hex characters", i)
	}
	names[r.Content.Name] = true
	return nil
}

// Replay extends every record into PCR values that start from start (absent PCRs start at
// zero) and returns the values of every PCR the log touches or start holds.
func (l *Log) Replay(start map[int][]byte) map[int][]byte {
	out := map[int][]byte{}
	for pcr, v := range start {
		out[pcr] = append([]byte(nil), v...)
	}
	for _, r := range l.Records {
		cur, ok := out[r.PCR]
		if !ok {
			cur = make([]byte, sha256.Size)
		}
		d, _ := hex.DecodeString(r.Digests[0].Digest)
		h := sha256.New()
		h.Write(cur)
		h.Write(d)
		out[r.PCR] = h.Sum(nil)
	}
	return out
}

// Measurements maps each measurement name to its digest (lowercase hex).
func (l *Log) Measurements() map[string]string {
	out := make(map[string]string, len(l.Records))
	for _, r := range l.Records {
		out[r.Content.Name] = r.Digests[0].Digest
	}
	return out
}

// PCRs lists the PCRs the log extends, ascending.
func (l *Log) PCRs() []int {
	seen := map[int]bool{}
	var out []int
	for _, r := range l.Records {
		if !seen[r.PCR] {
			seen[r.PCR] = true
			out = append(out, r.PCR)
		}
	}
	sort.Ints(out)
	return out
}
