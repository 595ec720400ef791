package manage

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/problem"
)

// Limits on names and text, following Azure Sphere where it sets one.
const (
	MaxNameLen        = 50  // tenants, products, device groups
	MaxUserNameLen    = 64  // user names may be e-mail addresses
	MaxDescriptionLen = 500 // product and device group descriptions
	MaxBulkClaim      = 1000

	MinCheckInInterval     = time.Minute
	MaxCheckInInterval     = 7 * 24 * time.Hour
	DefaultCheckInInterval = time.Hour

	DefaultTokenTTL = 90 * 24 * time.Hour
	MinTokenTTL     = time.Minute
	MaxTokenTTL     = 365 * 24 * time.Hour
)

// problems collects validation problems so a request reports all of them at once.
type problems []v1.ErrorDetail

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, v1.ErrorDetail{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return problem.Invalid(ps...)
}

// checkName checks a tenant, product or device group name: 1 to 50 characters of letters,
// digits, spaces, '-', '_' and '.', not starting or ending with a space, and not shaped like
// an ID (so that a name and an ID can never be confused).
func (ps *problems) checkName(field, s string) {
	ps.checkLabel(field, s, MaxNameLen, "letters, digits, spaces, '-', '_' and '.'", func(r rune) bool {
		return unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || r == '-' || r == '_' || r == '.'
	})
}

// checkUserName checks a user name: like a name, but '@' and '+' are allowed (e-mail
// addresses) and spaces are not.
func (ps *problems) checkUserName(field, s string) {
	ps.checkLabel(field, s, MaxUserNameLen, "letters, digits, '.', '-', '_', '@' and '+'", func(r rune) bool {
		return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_@+", r)
	})
}

func (ps *problems) checkLabel(field, s string, max int, allowed string, ok func(rune) bool) {
	switch {
	case s == "":
		ps.add(field, "is required")
		return
	case !utf8.ValidString(s):
		ps.add(field, "is not valid UTF-8")
		return
	case utf8.RuneCountInString(s) > max:
		ps.add(field, "is %d characters long; the limit is %d", utf8.RuneCountInString(s), max)
		return
	case strings.TrimSpace(s) != s:
		ps.add(field, "must not start or end with a space")
		return
	case ids.LooksLikeUUID(s):
		ps.add(field, "must not be shaped like an ID")
		return
	}
	for _, r := range s {
		if !ok(r) {
			ps.add(field, "contains %q; use only %s", r, allowed)
			return
		}
	}
}

func (ps *problems) checkDescription(field, s string) {
	switch {
	case !utf8.ValidString(s):
		ps.add(field, "is not valid UTF-8")
	case utf8.RuneCountInString(s) > MaxDescriptionLen:
		ps.add(field, "is %d characters long; the limit is %d", utf8.RuneCountInString(s), MaxDescriptionLen)
	default:
		for _, r := range s {
			if unicode.IsControl(r) {
				ps.add(field, "contains a control character")
				return
			}
		}
	}
}

// checkID checks that s is a resource ID.
func (ps *problems) checkID(field, s string) {
	if !ids.Valid(s) {
		ps.add(field, "%q is not an ID", s)
	}
}

func (ps *problems) checkInterval(field string, seconds int64) time.Duration {
	d := time.Duration(seconds) * time.Second
	if seconds < int64(MinCheckInInterval/time.Second) || seconds > int64(MaxCheckInInterval/time.Second) {
		ps.add(field, "must be between %d and %d seconds", int64(MinCheckInInterval/time.Second), int64(MaxCheckInInterval/time.Second))
	}
	return d
}
