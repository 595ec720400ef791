package manage

import (
	"context"
	"crypto/subtle"
	"errors"
	"unicode/utf8"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/apitoken"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/password"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Audit actions of passwords and console logins (service-level entries).
const (
	auditSetPassword  = "user.set-password"
	auditLoginFailure = "console.login"
)

// MinPasswordLength is the shortest password SetOwnPassword accepts, in characters.
const MinPasswordLength = 12

// PasswordParams are the argon2id parameters new passwords are hashed with.
var PasswordParams = password.Default

// errBadLogin is every password-login failure, so the answer does not tell whether the user
// exists or has a password.
var errBadLogin = problem.New(v1.CodeUnauthenticated, "invalid user name or password")

// dummyHash is verified against when there is no user or no password, so that a failure takes
// as long as a wrong password does.
var dummyHash = "$argon2id$v=19$m=65536,t=2,p=2$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// AuthenticatePassword checks a user's name and password and returns the user's principal,
// with no token (so not limited to one tenant). Every failure is the same error and is
// recorded in the service-level audit log with the remote address.
func (m *Manager) AuthenticatePassword(ctx context.Context, name, pw, remote string) (*authz.Principal, error) {
	fail := func(u store.User, why string) (*authz.Principal, error) {
		n := &note{resourceID: u.ID}
		n.detail("remote", remote)
		n.detail("reason", why)
		var p *authz.Principal
		if u.ID != "" {
			p = &authz.Principal{UserID: u.ID, UserName: u.Name}
		} else {
			p = &authz.Principal{UserName: clipName(name)}
		}
		m.auditFailure(ctx, p, op{action: auditLoginFailure, resourceType: "user"}, n, errBadLogin)
		return nil, errBadLogin
	}
	u, err := m.store.GetUserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		_, _ = password.Verify(dummyHash, pw)
		return fail(store.User{}, "no such user")
	}
	if err != nil {
		return nil, err
	}
	stored, err := m.store.GetUserPassword(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if stored.Hash == "" {
		_, _ = password.Verify(dummyHash, pw)
		return fail(u, "the user has no password")
	}
	ok, err := password.Verify(stored.Hash, pw)
	if err != nil {
		m.log.Error("a stored password hash is malformed", "user", u.ID, "error", err)
		return fail(u, "the stored password hash is malformed")
	}
	if !ok {
		return fail(u, "wrong password")
	}
	return &authz.Principal{UserID: u.ID, UserName: u.Name, ServiceAdmin: u.ServiceAdmin}, nil
}

// clipName bounds a user name a failed login typed before it goes into the audit log.
func clipName(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// SessionPrincipal rebuilds the principal of a console session: its user and, when it was
// opened with an API token, that token, which must still be valid (a revoked or expired
// token ends the session).
func (m *Manager) SessionPrincipal(ctx context.Context, userID, tokenID string) (*authz.Principal, error) {
	u, err := m.store.GetUser(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(v1.CodeUnauthenticated, "the session's user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	p := &authz.Principal{UserID: u.ID, UserName: u.Name, ServiceAdmin: u.ServiceAdmin}
	if tokenID == "" {
		return p, nil
	}
	t, err := m.store.GetToken(ctx, tokenID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(v1.CodeUnauthenticated, "the session's API token no longer exists")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case t.UserID != u.ID:
		return nil, problem.New(v1.CodeUnauthenticated, "the session's API token is another user's")
	case !t.RevokedAt.IsZero():
		return nil, problem.New(v1.CodeUnauthenticated, "API token %s has been revoked", t.ID)
	case !m.now().Before(t.ExpiresAt):
		return nil, problem.New(v1.CodeUnauthenticated, "API token %s has expired", t.ID)
	}
	p.TokenID, p.TokenTenantID, p.ExpiresAt = t.ID, t.TenantID, t.ExpiresAt
	return p, nil
}

// SetOwnPassword sets the caller's password. The caller proves it is the user with the
// current password when one is set, or else with an API token of its own (its secret). The
// change is audited; the new password must be MinPasswordLength to password.MaxPassword long
// and not the user's name.
func (m *Manager) SetOwnPassword(ctx context.Context, p *authz.Principal, proof, newPassword string) error {
	if p == nil || p.UserID == "" {
		return problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	o := op{action: auditSetPassword, resourceType: "user"}
	n := &note{resourceID: p.UserID}
	var d []v1.ErrorDetail
	switch {
	case utf8.RuneCountInString(newPassword) < MinPasswordLength:
		d = append(d, v1.ErrorDetail{Field: "new_password", Message: "must be at least 12 characters"})
	case len(newPassword) > password.MaxPassword:
		d = append(d, v1.ErrorDetail{Field: "new_password", Message: "must be at most 1024 bytes"})
	case subtle.ConstantTimeCompare([]byte(newPassword), []byte(p.UserName)) == 1:
		d = append(d, v1.ErrorDetail{Field: "new_password", Message: "must not be the user name"})
	}
	if len(d) > 0 {
		return problem.Invalid(d...)
	}
	cur, err := m.store.GetUserPassword(ctx, p.UserID)
	if err != nil {
		return err
	}
	if err := m.checkProof(ctx, p, cur.Hash, proof); err != nil {
		m.auditFailure(ctx, p, o, n, err)
		return err
	}
	hash, err := password.Hash(m.rand, newPassword, PasswordParams)
	if err != nil {
		return err
	}
	n.detail("first", cur.Hash == "")
	return m.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.SetUserPassword(ctx, p.UserID, hash, m.timestamp()); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, m.auditEntry(p, o, n, nil))
		return err
	})
}

// checkProof checks the proof of SetOwnPassword.
func (m *Manager) checkProof(ctx context.Context, p *authz.Principal, hash, proof string) error {
	refused := problem.Invalid(v1.ErrorDetail{Field: "current", Message: "is not your current password"})
	if hash != "" {
		ok, err := password.Verify(hash, proof)
		if err != nil || !ok {
			return refused
		}
		return nil
	}
	refused = problem.Invalid(v1.ErrorDetail{Field: "current", Message: "is not a valid API token of yours (you have no password yet)"})
	if _, err := apitoken.Hash(proof); err != nil {
		return refused
	}
	tp, err := m.Authenticate(ctx, proof)
	if err != nil {
		if _, _, internal := problem.Describe(err); internal {
			return err
		}
		return refused
	}
	if tp.UserID != p.UserID {
		return refused
	}
	return nil
}

// HasPassword reports whether the caller has a password.
func (m *Manager) HasPassword(ctx context.Context, p *authz.Principal) (bool, error) {
	if p == nil || p.UserID == "" {
		return false, problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	pw, err := m.store.GetUserPassword(ctx, p.UserID)
	return pw.Hash != "", err
}
