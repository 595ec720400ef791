-- The web console: users' password hashes and the console's login sessions, so that every
-- replica serves every session and sessions survive a restart.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
-- IDs use the "C" collation so that they sort bytewise, as on SQLite.
ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT ''; -- argon2id, PHC string; '' for none
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;

-- Only the SHA-256 of a session's ID is stored; the ID is only in the browser's cookie.
CREATE TABLE console_sessions (
	id_hash      BYTEA PRIMARY KEY,
	user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id),
	token_id     TEXT COLLATE "C" NOT NULL, -- the API token it was opened with, '' for a password login
	csrf         TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	last_seen_at BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen_at);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
