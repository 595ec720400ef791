package cli

import (
	"encoding/json"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Output formats.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// printer renders results as a table or as JSON. JSON is the API's objects as the API returns
// them; a list is a JSON array of all its items.
type printer struct {
	w      io.Writer
	format string
}

func (p printer) json() bool { return p.format == formatJSON }

// print writes v as JSON, or calls table.
func (p printer) print(v any, table func() error) error {
	if p.json() {
		return p.writeJSON(v)
	}
	return table()
}

func (p printer) writeJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = p.w.Write(append(b, '\n'))
	return err
}

// table writes a header of upper-case column names and one row per object.
func (p printer) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 8, 2, ' ', 0)
	writeRow(tw, header)
	for _, r := range rows {
		writeRow(tw, r)
	}
	return tw.Flush()
}

// fields writes a key/value table, one field per line.
func (p printer) fields(kv [][2]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 8, 2, ' ', 0)
	for _, f := range kv {
		writeRow(tw, []string{f[0], f[1]})
	}
	return tw.Flush()
}

// line writes a message for people; JSON output leaves it out.
func (p printer) line(s string) error {
	if p.json() {
		return nil
	}
	_, err := io.WriteString(p.w, clean(s)+"\n")
	return err
}

func writeRow(w io.Writer, cells []string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		io.WriteString(w, clean(c))
	}
	io.WriteString(w, "\n")
}

// clean makes a string from the server safe for one table cell or line on a terminal: control
// characters, which could break the table or drive the terminal, and bidirectional overrides,
// which could make text read other than it is, become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)
}

// timeCell formats a time for a table: RFC 3339 in UTC, or empty for the zero time.
func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func boolCell(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func secondsCell(s int64) string {
	if s <= 0 {
		return ""
	}
	return formatDuration(time.Duration(s) * time.Second)
}
