package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/rampart-iot/rampart/enrollment"
)

// Limits on enrollment files.
const (
	// maxEnrollmentFileBytes bounds a file given to --enrollment or --bulk.
	maxEnrollmentFileBytes = 64 << 20
	// maxBulkClaim is the most records the server takes in one bulk claim request.
	maxBulkClaim = 1000
)

// record is one enrollment record from a file, and the line on which it starts.
type record struct {
	raw  json.RawMessage // compact JSON object
	line int
}

// readEnrollmentFile reads a file of enrollment records; "-" is stdin.
func readEnrollmentFile(path string, stdin io.Reader) ([]record, error) {
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, maxEnrollmentFileBytes+1))
		if len(b) > maxEnrollmentFileBytes {
			err = fmt.Errorf("stdin holds more than %d bytes", maxEnrollmentFileBytes)
		}
	} else {
		b, err = readFileLimited(path, maxEnrollmentFileBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("reading enrollment records: %w", err)
	}
	recs, err := parseRecords(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}

// parseRecords parses enrollment records: a JSON array of objects, or JSON objects one after
// another (JSONL, one record per line, or pretty-printed). Each record must be a JSON object no
// larger than enrollment.MaxRecordSize once compacted; the server checks the rest.
func parseRecords(data []byte) ([]record, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	start := skipSpace(data, 0)
	if start == len(data) {
		return nil, errors.New("no enrollment records")
	}
	var recs []record
	if data[start] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, jsonError(data, err)
		}
		// Find where each element starts, for error messages and results.
		dec := json.NewDecoder(bytes.NewReader(data))
		if _, err := dec.Token(); err != nil {
			return nil, jsonError(data, err)
		}
		for i, raw := range raws {
			line := lineAt(data, skipSpaceComma(data, int(dec.InputOffset())))
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, jsonError(data, err)
			}
			r, err := newRecord(raw, line)
			if err != nil {
				return nil, fmt.Errorf("record %d (line %d): %w", i+1, line, err)
			}
			recs = append(recs, r)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		for {
			line := lineAt(data, skipSpace(data, int(dec.InputOffset())))
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, jsonError(data, err)
			}
			r, err := newRecord(raw, line)
			if err != nil {
				return nil, fmt.Errorf("record %d (line %d): %w", len(recs)+1, line, err)
			}
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return nil, errors.New("no enrollment records")
	}
	return recs, nil
}

func newRecord(raw json.RawMessage, line int) (record, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return record{}, err
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return record{}, errors.New("not a JSON object")
	}
	if buf.Len() > enrollment.MaxRecordSize {
		return record{}, fmt.Errorf("record is larger than %d bytes", enrollment.MaxRecordSize)
	}
	return record{raw: buf.Bytes(), line: line}, nil
}

// jsonError says where in data a JSON syntax error is.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("line %d: invalid JSON: %v", lineAt(data, int(se.Offset)), se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return errors.New("want a JSON array of enrollment records, or one record per line")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of file")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

func skipSpaceComma(data []byte, i int) int {
	i = skipSpace(data, i)
	if i < len(data) && data[i] == ',' {
		i = skipSpace(data, i+1)
	}
	return i
}

// lineAt returns the 1-based line number of byte offset off.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// readSingleEnrollment reads the one record in path.
func readSingleEnrollment(path string, stdin io.Reader) (json.RawMessage, error) {
	recs, err := readEnrollmentFile(path, stdin)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("%s holds %d enrollment records; use --bulk to claim several", path, len(recs))
	}
	return recs[0].raw, nil
}

// isDeviceID reports whether s is a device ID: 64 lowercase hexadecimal characters.
func isDeviceID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
