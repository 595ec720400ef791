package tufclient

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ErrNotFound is what a Fetcher wraps when the file asked for does not exist. It ends the
// walk along the root chain; for any other file it is a failure of the repository.
var ErrNotFound = errors.New("metadata file not found")

// Reason classifies a refusal, so that the agent can report it in a structured way.
type Reason string

// Reasons. Each names the attack it defends against where there is one.
const (
	// ReasonUnavailable: a file could not be fetched (network, server, not found); retry later.
	ReasonUnavailable Reason = "unavailable"
	// ReasonTooLarge: endless data; a file is larger than its bound or its pinned length.
	ReasonTooLarge Reason = "too-large"
	// ReasonMalformed: a file is not valid metadata of the role asked for.
	ReasonMalformed Reason = "malformed"
	// ReasonSignature: arbitrary software; not signed by a threshold of the trusted keys
	// (a forged or tampered file).
	ReasonSignature Reason = "signature"
	// ReasonWrongRepository: wrong software; none of the file's signatures is by a key the
	// trusted root lists for its role: metadata of another group's director or another
	// tenant's image repository (or forged with a foreign key).
	ReasonWrongRepository Reason = "wrong-repository"
	// ReasonRollback: a version older than one the device already trusts.
	ReasonRollback Reason = "rollback"
	// ReasonExpired: indefinite freeze; the newest metadata the repository offers has expired.
	ReasonExpired Reason = "expired"
	// ReasonMismatch: mix-and-match; a file other than the one the timestamp or snapshot pins,
	// or a director target the image repository does not agree with.
	ReasonMismatch Reason = "mismatch"
	// ReasonState: the state directory could not be read or written.
	ReasonState Reason = "state"
)

var reasonText = map[Reason]string{
	ReasonUnavailable:     "unavailable",
	ReasonTooLarge:        "endless data",
	ReasonMalformed:       "malformed metadata",
	ReasonSignature:       "arbitrary software: not signed by a threshold of the trusted keys",
	ReasonWrongRepository: "wrong software: signed only by keys this repository does not trust",
	ReasonRollback:        "rollback",
	ReasonExpired:         "freeze: expired",
	ReasonMismatch:        "mix-and-match",
	ReasonState:           "state directory",
}

// Error is every error Refresh returns: which repository and file, or which target, and why.
type Error struct {
	Repo   Repo   // the repository at fault; empty for errors of the client itself
	File   string // the metadata file, such as "3.targets.json", if one is at fault
	Target string // the target path, for a director target the image repository disagrees with
	Reason Reason
	Err    error // the detail
}

func (e *Error) Error() string {
	s := string(e.Repo)
	if e.File != "" {
		s += " " + e.File
	}
	if e.Target != "" {
		s += " target " + e.Target
	}
	if s != "" {
		s += ": "
	}
	return s + reasonText[e.Reason] + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of an error Refresh returned, or "" for nil or other errors.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// classify turns an error from go-tuf's trusted metadata set into an *Error. keyIDs are the
// key IDs the trusted root lists for the role (to tell a foreign signer from a bad signature;
// nil for a root, whose bad signatures are always ReasonSignature);
// data is the file; loaded reports whether go-tuf loaded the file before it failed a final
// check (a snapshot or timestamp of the wrong version is loaded, then refused).
func classify(repo Repo, file string, err error, keyIDs []string, data []byte, loaded bool) *Error {
	e := &Error{Repo: repo, File: file, Err: err}
	var unsigned *metadata.ErrUnsignedMetadata
	switch {
	case errors.As(err, &unsigned):
		e.Reason = ReasonSignature
		if keyIDs != nil && !signedByAny(data, keyIDs) {
			e.Reason = ReasonWrongRepository
		}
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		e.Reason = ReasonExpired
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		e.Reason = ReasonRollback
		if loaded {
			e.Reason = ReasonMismatch
			e.Err = fmt.Errorf("not the version pinned: %w", err)
		}
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		e.Reason = ReasonMismatch
		e.Err = fmt.Errorf("not the file pinned: %w", err)
	default:
		e.Reason = ReasonMalformed
	}
	return e
}

// signedByAny reports whether any signature in data names one of keyIDs.
func signedByAny(data []byte, keyIDs []string) bool {
	var m struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	for _, s := range m.Signatures {
		for _, id := range keyIDs {
			if s.KeyID == id {
				return true
			}
		}
	}
	return false
}
