package problem

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

func TestDescribe(t *testing.T) {
	secret := errors.New("pq: password=hunter2")
	cases := []struct {
		err      error
		status   int
		code     string
		internal bool
		contains string
	}{
		{New(v1.CodeForbidden, "forbidden: no"), 403, v1.CodeForbidden, false, "forbidden"},
		{fmt.Errorf("wrapped: %w", &Error{Code: v1.CodeValidation, Message: "name: too long", Err: secret}), 422, v1.CodeValidation, false, "too long"},
		{fmt.Errorf("product %q: %w", "x", store.ErrNotFound), 404, v1.CodeNotFound, false, "product"},
		{fmt.Errorf("name taken: %w", store.ErrConflict), 409, v1.CodeConflict, false, "taken"},
		{fmt.Errorf("group has devices: %w", store.ErrNotEmpty), 409, v1.CodeConflict, false, "devices"},
		{fmt.Errorf("device d: %w", store.ErrClaimedByOtherTenant), 409, v1.CodeDeviceClaimed, false, "another tenant"},
		{&strictjson.Error{Problems: []strictjson.Problem{{Path: "x", Message: "unknown field"}}}, 400, v1.CodeBadRequest, false, "unknown field"},
		{&http.MaxBytesError{Limit: 10}, 413, v1.CodePayloadTooLarge, false, "10 bytes"},
		{secret, 500, v1.CodeInternal, true, "internal"},
	}
	for _, c := range cases {
		st, body, internal := Describe(c.err)
		if st != c.status || body.Code != c.code || internal != c.internal || !strings.Contains(body.Message, c.contains) {
			t.Errorf("Describe(%v) = %d %+v %v", c.err, st, body, internal)
		}
		if strings.HasSuffix(body.Message, ": conflict") || strings.HasSuffix(body.Message, ": not empty") {
			t.Errorf("sentinel text left in the message: %q", body.Message)
		}
		if strings.Contains(body.Message, "hunter2") {
			t.Errorf("internal cause leaked: %q", body.Message)
		}
	}
}

func TestEveryCodeHasAStatus(t *testing.T) {
	for _, c := range []string{v1.CodeBadRequest, v1.CodeValidation, v1.CodeUnauthenticated, v1.CodeForbidden,
		v1.CodeNotFound, v1.CodeConflict, v1.CodeDeviceClaimed, v1.CodePayloadTooLarge, v1.CodeUnsupportedMedia,
		v1.CodeMethodNotAllowed, v1.CodeInternal, v1.CodeUnavailable, v1.CodeRootOfTrustRejected, v1.CodeAttestationFailed} {
		if _, ok := status[c]; !ok {
			t.Errorf("code %s has no status", c)
		}
	}
}

func TestInvalidMessage(t *testing.T) {
	one := Invalid(v1.ErrorDetail{Field: "name", Message: "is required"})
	if one.Message != "name: is required" {
		t.Errorf("got %q", one.Message)
	}
	two := Invalid(v1.ErrorDetail{Field: "a", Message: "x"}, v1.ErrorDetail{Field: "b", Message: "y"})
	if !strings.Contains(two.Message, "2 problems") || len(two.Details) != 2 {
		t.Errorf("got %+v", two)
	}
}
