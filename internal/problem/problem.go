// Package problem separates what a user is told from why a request failed. An *Error carries an
// API error code, a one-line message for the user, optional per-field details, and the internal
// cause. Describe maps any error to an HTTP status and the API's error shape; it is the one place
// where errors become statuses, so every interface (REST API, console) reports alike.
package problem

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

// Error is a failure the caller can act on.
type Error struct {
	Code    string // one of the v1.Code* constants
	Message string // one line for the user
	Details []v1.ErrorDetail
	Extra   map[string]any
	Err     error // internal cause; never shown to the caller
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a validation error listing each field's problem.
func Invalid(details ...v1.ErrorDetail) *Error {
	msg := "invalid request"
	if len(details) == 1 {
		msg = details[0].Message
		if details[0].Field != "" {
			msg = details[0].Field + ": " + msg
		}
	} else if len(details) > 1 {
		msg = fmt.Sprintf("invalid request: %d problems", len(details))
	}
	return &Error{Code: v1.CodeValidation, Message: msg, Details: details}
}

// Forbidden says the caller's role does not allow an action.
func Forbidden(role store.Role, action string) *Error {
	if role == "" {
		return New(v1.CodeForbidden, "forbidden: you are not allowed to %s", action)
	}
	return New(v1.CodeForbidden, "forbidden: your role %s does not allow %s", role, action)
}

// status is the HTTP status of each error code.
var status = map[string]int{
	v1.CodeBadRequest:          http.StatusBadRequest,
	v1.CodeValidation:          http.StatusUnprocessableEntity,
	v1.CodeUnauthenticated:     http.StatusUnauthorized,
	v1.CodeForbidden:           http.StatusForbidden,
	v1.CodeNotFound:            http.StatusNotFound,
	v1.CodeConflict:            http.StatusConflict,
	v1.CodeDeviceClaimed:       http.StatusConflict,
	v1.CodePayloadTooLarge:     http.StatusRequestEntityTooLarge,
	v1.CodeUnsupportedMedia:    http.StatusUnsupportedMediaType,
	v1.CodeMethodNotAllowed:    http.StatusMethodNotAllowed,
	v1.CodeInternal:            http.StatusInternalServerError,
	v1.CodeUnavailable:         http.StatusServiceUnavailable,
	v1.CodeRateLimited:         http.StatusTooManyRequests,
	v1.CodeRootOfTrustRejected: http.StatusUnprocessableEntity,
	v1.CodeAttestationFailed:   http.StatusForbidden,
}

// Status returns the HTTP status for an error code (500 for an unknown code).
func Status(code string) int {
	if s, ok := status[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Describe maps err to an HTTP status and the error body. internal is true when the cause is
// not something the caller can act on; the caller then sees only a generic message, and the
// boundary must log err.
func Describe(err error) (httpStatus int, body v1.Error, internal bool) {
	var pe *Error
	var se *strictjson.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &pe):
		body = v1.Error{Code: pe.Code, Message: pe.Message, Details: pe.Details, Extra: pe.Extra}
	case errors.As(err, &se):
		body = v1.Error{Code: v1.CodeBadRequest, Message: "request body: " + se.Error()}
		for _, p := range se.Problems {
			body.Details = append(body.Details, v1.ErrorDetail{Field: p.Path, Message: p.Message})
		}
	case errors.As(err, &mbe):
		body = v1.Error{Code: v1.CodePayloadTooLarge,
			Message: fmt.Sprintf("request body is larger than the limit of %d bytes", mbe.Limit),
			Extra:   map[string]any{"limit_bytes": mbe.Limit}}
	case errors.Is(err, store.ErrNotFound):
		body = v1.Error{Code: v1.CodeNotFound, Message: err.Error()}
	case errors.Is(err, store.ErrClaimedByOtherTenant):
		body = v1.Error{Code: v1.CodeDeviceClaimed, Message: err.Error()}
	case errors.Is(err, store.ErrConflict):
		body = v1.Error{Code: v1.CodeConflict, Message: strings.TrimSuffix(err.Error(), ": "+store.ErrConflict.Error())}
	case errors.Is(err, store.ErrNotEmpty):
		body = v1.Error{Code: v1.CodeConflict, Message: strings.TrimSuffix(err.Error(), ": "+store.ErrNotEmpty.Error())}
	default:
		return http.StatusInternalServerError, v1.Error{Code: v1.CodeInternal, Message: "internal error; the server log has details"}, true
	}
	return Status(body.Code), body, false
}
