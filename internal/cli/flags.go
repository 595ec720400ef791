package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// usageError is a mistake in how a command was called: an unknown command or flag, a missing
// or extra argument, a bad flag value. Run prints it with a hint and exits 2.
type usageError struct {
	cmd *cobra.Command // the command whose help the hint names; nil means the root
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// args returns a validator that accepts between min and max positional arguments, named by
// names in the error message.
func args(min, max int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		switch {
		case len(a) < min:
			return usagef(cmd, "missing argument %s", names)
		case len(a) > max && max == 0:
			return usagef(cmd, "unexpected argument %q", a[0])
		case len(a) > max:
			return usagef(cmd, "too many arguments: want %s", names)
		}
		return nil
	}
}

// noArgs accepts no positional argument.
var noArgs = args(0, 0, "")

// requireFlags returns a usage error naming the first of the flags that was not given.
func requireFlags(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return usagef(cmd, "missing flag --%s", n)
		}
	}
	return nil
}

// enumValue is a string flag that takes one of a fixed set of values, matched
// case-insensitively and stored as spelled in the set.
type enumValue struct {
	allowed []string
	value   *string
}

func (e *enumValue) String() string { return *e.value }
func (e *enumValue) Type() string   { return strings.Join(e.allowed, "|") }

func (e *enumValue) Set(s string) error {
	for _, a := range e.allowed {
		if strings.EqualFold(a, s) {
			*e.value = a
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(e.allowed, ", "))
}

// enumFlag defines an enum flag on cmd, with shell completion of its values.
func enumFlag(cmd *cobra.Command, p *string, name, short, def, usage string, allowed ...string) {
	*p = def
	cmd.Flags().VarP(&enumValue{allowed: allowed, value: p}, name, short, usage)
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
}

// durationValue is a duration flag that also accepts whole days, such as 90d.
type durationValue struct {
	d *time.Duration
}

func (v durationValue) String() string {
	if *v.d == 0 {
		return ""
	}
	return formatDuration(*v.d)
}
func (v durationValue) Type() string { return "duration" }

func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

// parseDuration parses a positive Go duration (90m, 1h30m) or a whole number of days (30d).
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > 100*365 {
			return 0, fmt.Errorf("invalid duration %q: want a duration such as 12h, 90m or 30d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a duration such as 12h, 90m or 30d", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid duration %q: must be positive", s)
	}
	return d, nil
}

// seconds converts d to whole seconds, refusing fractions.
func seconds(d time.Duration, flag string) (int64, error) {
	if d%time.Second != 0 {
		return 0, fmt.Errorf("--%s must be a whole number of seconds, not %s", flag, d)
	}
	return int64(d / time.Second), nil
}

// formatDuration prints d without zero units: 1h, 1h30m, 45s, 2d.
func formatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseTime parses an audit time bound: RFC 3339, a date (2006-01-02, UTC), or a duration
// before now (24h, 7d).
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := parseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration ago (24h, 7d)", s)
}
