package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

func sessionHash(n string) []byte { h := sha256.Sum256([]byte("session " + n)); return h[:] }

func newSession(n, userID, tokenID string, created, seen, expires int) store.ConsoleSession {
	return store.ConsoleSession{IDHash: sessionHash(n), UserID: userID, TokenID: tokenID, CSRF: "csrf-" + n,
		CreatedAt: at(created), LastSeenAt: at(seen), ExpiresAt: at(expires)}
}

func testUserPasswords(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateUser(ctx, store.User{ID: "user-alice", Name: "alice", CreatedAt: at(0)}))
	p, err := s.GetUserPassword(ctx, "user-alice")
	must(t, err)
	if p != (store.UserPassword{}) {
		t.Fatalf("a new user has a password: %+v", p)
	}
	const hash = "$argon2id$v=19$m=64,t=1,p=1$AQEBAQEBAQEBAQEBAQEBAQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	must(t, s.SetUserPassword(ctx, "user-alice", hash, at(5)))
	p, err = s.GetUserPassword(ctx, "user-alice")
	must(t, err)
	if p.Hash != hash || !p.ChangedAt.Equal(stored(at(5))) {
		t.Fatalf("password = %+v", p)
	}
	// The user record itself is unchanged, and the password is the user's alone.
	u, err := s.GetUser(ctx, "user-alice")
	must(t, err)
	if u.Name != "alice" {
		t.Fatalf("user = %+v", u)
	}
	must(t, s.CreateUser(ctx, store.User{ID: "user-bob", Name: "bob", CreatedAt: at(0)}))
	if p, _ := s.GetUserPassword(ctx, "user-bob"); p.Hash != "" {
		t.Fatalf("bob got alice's password: %+v", p)
	}
	must(t, s.SetUserPassword(ctx, "user-alice", "", at(6)))
	if p, _ := s.GetUserPassword(ctx, "user-alice"); p.Hash != "" {
		t.Fatalf("password not removed: %+v", p)
	}
	isErr(t, s.SetUserPassword(ctx, "user-nobody", hash, at(5)), store.ErrNotFound)
	_, err = s.GetUserPassword(ctx, "user-nobody")
	isErr(t, err, store.ErrNotFound)
	// Inside Update too, rolled back with it.
	err = s.Update(ctx, func(tx store.Tx) error {
		must(t, tx.SetUserPassword(ctx, "user-bob", hash, at(7)))
		if p, err := tx.GetUserPassword(ctx, "user-bob"); err != nil || p.Hash != hash {
			t.Fatalf("in the transaction: %+v %v", p, err)
		}
		return fmt.Errorf("password of user-bob: rolled back on purpose: %w", store.ErrConflict)
	})
	isErr(t, err, store.ErrConflict)
	if p, _ := s.GetUserPassword(ctx, "user-bob"); p.Hash != "" {
		t.Fatalf("a rolled-back password was kept: %+v", p)
	}
}

func testConsoleSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateUser(ctx, store.User{ID: "user-alice", Name: "alice", CreatedAt: at(0)}))
	must(t, s.CreateUser(ctx, store.User{ID: "user-bob", Name: "bob", CreatedAt: at(0)}))
	a := newSession("a", "user-alice", "tok-1", 0, 0, 600)
	must(t, s.CreateConsoleSession(ctx, a))
	got, err := s.GetConsoleSession(ctx, sessionHash("a"))
	must(t, err)
	want := a
	want.CreatedAt, want.LastSeenAt, want.ExpiresAt = stored(a.CreatedAt), stored(a.LastSeenAt), stored(a.ExpiresAt)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("session = %+v, want %+v", got, want)
	}
	isErr(t, s.CreateConsoleSession(ctx, a), store.ErrConflict)
	isErr(t, s.CreateConsoleSession(ctx, newSession("x", "user-nobody", "", 0, 0, 600)), store.ErrNotFound)
	_, err = s.GetConsoleSession(ctx, sessionHash("missing"))
	isErr(t, err, store.ErrNotFound)

	must(t, s.TouchConsoleSession(ctx, sessionHash("a"), at(30)))
	got, _ = s.GetConsoleSession(ctx, sessionHash("a"))
	if !got.LastSeenAt.Equal(stored(at(30))) || !got.CreatedAt.Equal(stored(at(0))) {
		t.Fatalf("after touch: %+v", got)
	}
	isErr(t, s.TouchConsoleSession(ctx, sessionHash("missing"), at(30)), store.ErrNotFound)

	// Expiry: idle (last seen before the cutoff) or past the absolute expiry; at most limit.
	must(t, s.CreateConsoleSession(ctx, newSession("idle", "user-alice", "", 0, 10, 600)))
	must(t, s.CreateConsoleSession(ctx, newSession("old", "user-bob", "", 0, 100, 90)))
	must(t, s.CreateConsoleSession(ctx, newSession("live", "user-bob", "", 0, 100, 600)))
	n, err := s.DeleteExpiredConsoleSessions(ctx, at(20), at(95), 1)
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d with limit 1", n)
	}
	n, err = s.DeleteExpiredConsoleSessions(ctx, at(20), at(95), 100)
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d more, want 1", n)
	}
	for name, alive := range map[string]bool{"a": true, "idle": false, "old": false, "live": true} {
		_, err := s.GetConsoleSession(ctx, sessionHash(name))
		if alive && err != nil || !alive && err == nil {
			t.Errorf("session %s: alive=%v, err=%v", name, alive, err)
		}
	}

	// A user's sessions but one; then logout of one.
	must(t, s.CreateConsoleSession(ctx, newSession("a2", "user-alice", "", 40, 40, 600)))
	must(t, s.CreateConsoleSession(ctx, newSession("a3", "user-alice", "", 40, 40, 600)))
	n, err = s.DeleteUserConsoleSessions(ctx, "user-alice", sessionHash("a2"))
	must(t, err)
	if n != 2 {
		t.Fatalf("deleted %d of alice's sessions, want 2 (a, a3)", n)
	}
	if s2, err := s.GetConsoleSession(ctx, sessionHash("a2")); err != nil || !bytes.Equal(s2.IDHash, sessionHash("a2")) {
		t.Fatalf("the kept session: %+v %v", s2, err)
	}
	if _, err := s.GetConsoleSession(ctx, sessionHash("live")); err != nil {
		t.Fatalf("bob's session went with alice's: %v", err)
	}
	n, err = s.DeleteUserConsoleSessions(ctx, "user-alice", nil)
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d, want 1", n)
	}
	must(t, s.DeleteConsoleSession(ctx, sessionHash("live")))
	must(t, s.DeleteConsoleSession(ctx, sessionHash("live")))
	_, err = s.GetConsoleSession(ctx, sessionHash("live"))
	isErr(t, err, store.ErrNotFound)
}

func testErrorReportsByBin(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	w.claim(w.a.ID, "group-1", 2)
	w.claim(w.b.ID, "", 3)
	// Component 1, signal 11 at minutes 0, 1, 9, 10, 29 and 30; component 2, signal 6 at
	// minute 5; an AppExit at minute 12; another tenant's crash at minute 1.
	var rs []store.ErrorReport
	for i, m := range []int{0, 1, 9, 10, 29, 30} {
		r := newReport(w.a.ID, 1+i%2, 100+i, 1, 11)
		r.Time = at(m)
		rs = append(rs, r)
	}
	r := newReport(w.a.ID, 1, 200, 2, 6)
	r.Time = at(5)
	rs = append(rs, r)
	r = newReport(w.a.ID, 2, 201, 1, 0)
	r.Type, r.ExitCode, r.Time = "AppExit", 3, at(12)
	rs = append(rs, r)
	other := newReport(w.b.ID, 3, 300, 1, 11)
	other.Time = at(1)
	rs = append(rs, other)
	_, err := s.AddErrorReports(ctx, rs)
	must(t, err)

	// Three bins of ten minutes from minute 0: minute 30 is outside.
	got, err := s.CountErrorReportsByBin(ctx, w.a.ID, store.ErrorReportFilter{Since: at(-100), Until: at(1)}, nil, at(0), 10*time.Minute, 3, 100)
	must(t, err)
	c1, c2 := componentOf(1), componentOf(2)
	want := []store.ErrorBinCount{
		{Type: "AppCrash", ComponentID: c1, ImageID: imageIDOf(1), Signal: 11, ExitCode: store.NoExitCode, Bin: 0, Count: 3},
		{Type: "AppCrash", ComponentID: c1, ImageID: imageIDOf(1), Signal: 11, ExitCode: store.NoExitCode, Bin: 1, Count: 1},
		{Type: "AppCrash", ComponentID: c1, ImageID: imageIDOf(1), Signal: 11, ExitCode: store.NoExitCode, Bin: 2, Count: 1},
		{Type: "AppCrash", ComponentID: c2, ImageID: imageIDOf(2), Signal: 6, ExitCode: store.NoExitCode, Bin: 0, Count: 1},
		{Type: "AppExit", ComponentID: c1, ImageID: imageIDOf(1), Signal: 0, ExitCode: 3, Bin: 1, Count: 1},
	}
	eq(t, got, want)

	// One bucket only; a type filter; a device filter; the limit.
	got, err = s.CountErrorReportsByBin(ctx, w.a.ID, store.ErrorReportFilter{}, &store.ErrorBucket{Type: "AppExit", ComponentID: c1, ImageID: imageIDOf(1), ExitCode: 3}, at(0), 10*time.Minute, 3, 100)
	must(t, err)
	eq(t, got, want[len(want)-1:])
	got, err = s.CountErrorReportsByBin(ctx, w.a.ID, store.ErrorReportFilter{Type: "AppExit"}, nil, at(0), time.Hour, 1, 100)
	must(t, err)
	eq(t, len(got), 1)
	got, err = s.CountErrorReportsByBin(ctx, w.a.ID, store.ErrorReportFilter{DeviceID: deviceIDOf(2)}, nil, at(0), time.Hour, 1, 100)
	must(t, err)
	var n int64
	for _, c := range got {
		n += c.Count
	}
	eq(t, n, int64(4)) // minutes 1, 10 and 30 of component 1, and the AppExit
	got, err = s.CountErrorReportsByBin(ctx, w.a.ID, store.ErrorReportFilter{}, nil, at(0), 10*time.Minute, 3, 2)
	must(t, err)
	eq(t, len(got), 2)
	// The other tenant's crash is its own.
	got, err = s.CountErrorReportsByBin(ctx, w.b.ID, store.ErrorReportFilter{}, nil, at(0), 10*time.Minute, 3, 100)
	must(t, err)
	eq(t, len(got), 1)
	if _, err := s.CountErrorReportsByBin(ctx, w.a.ID, store.ErrorReportFilter{}, nil, at(0), 0, 3, 100); err == nil {
		t.Error("a zero bin width is accepted")
	}
}
