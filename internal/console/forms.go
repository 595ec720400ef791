package console

import (
	"net/http"
	"strconv"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
)

// form is a management form as the user typed it and, after a refusal, what was wrong: each
// problem the management plane (or the console, for a number it could not read) named a field
// of is shown next to that field, the others above the form. The console never decides whether
// a value is acceptable: it only reads numbers, and manage validates everything.
type form struct {
	Values map[string]string   // the inputs as typed, by name
	Error  string              // the refusal's message; "" before any
	Fields map[string][]string // problems by input name
	Other  []v1.ErrorDetail    // problems of no input of this form
}

// newForm reads the named inputs of the request's POSTed form.
func newForm(c *call, names ...string) *form {
	f := &form{Values: map[string]string{}}
	for _, n := range names {
		f.Values[n] = c.r.PostForm.Get(n)
	}
	return f
}

// V is an input's value as typed.
func (f *form) V(name string) string {
	if f == nil {
		return ""
	}
	return f.Values[name]
}

// Errs are the problems with one input.
func (f *form) Errs(name string) []string {
	if f == nil {
		return nil
	}
	return f.Fields[name]
}

// Failed reports whether the form was refused.
func (f *form) Failed() bool { return f != nil && f.Error != "" }

// add records a problem with an input (or of the form, if it has no such input).
func (f *form) add(field, msg string) {
	if f.Fields == nil {
		f.Fields = map[string][]string{}
	}
	if _, ok := f.Values[field]; ok {
		f.Fields[field] = append(f.Fields[field], msg)
		return
	}
	f.Other = append(f.Other, v1.ErrorDetail{Field: field, Message: msg})
}

// int64Field reads an optional whole number: nil when the input is empty; a problem recorded
// next to the input when it is not a number.
func (f *form) int64Field(name string) *int64 {
	s := strings.TrimSpace(f.Values[name])
	if s == "" {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f.add(name, "must be a whole number of seconds")
		return nil
	}
	return &v
}

// typed reports whether reading the form found problems of its own; they are shown only to a
// caller whose role allows the action (anyone else gets the management plane's 403, as a
// Reader's forged POST must).
func (f *form) typed(c *call, a authz.Action) (bool, error) {
	if len(f.Fields) == 0 && len(f.Other) == 0 {
		return false, nil
	}
	if !c.can(a) {
		return true, problem.Forbidden(c.tenant.Role, string(a))
	}
	f.Error = "The form has problems; nothing was changed."
	return true, nil
}

// refuse turns a write's error into the form's problems and the status to show them with, when
// the user can act on it (a validation error, a conflict such as a group that still holds
// devices, a thing not found); any other error (forbidden, internal) is returned as it is, to
// be shown as an error page.
func (f *form) refuse(err error) (int, error) {
	status, body, internal := problem.Describe(err)
	if internal || status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusRequestEntityTooLarge {
		return 0, err
	}
	f.Error = body.Message
	for _, d := range body.Details {
		f.add(d.Field, d.Message)
	}
	return status, nil
}
