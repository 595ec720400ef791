-- Check-in and update metadata: what each device last reported, and the signed TUF metadata of
-- every repository (a tenant's image repository, each device group's director).
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
-- IDs use the "C" collation so that they sort bytewise, as on SQLite, for keyset paging.

-- A device's latest check-in report (tenant_id is the device's), as validated at the API
-- boundary (JSON; untrusted: the device says it).
CREATE TABLE device_reports (
	device_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES devices (id),
	tenant_id     TEXT COLLATE "C" NOT NULL,
	report        BYTEA NOT NULL,
	checked_in_at BIGINT
);

-- Signed metadata, one row per role version. repository is "images" or "director/<group ID>";
-- role is root, targets, snapshot or timestamp. Versions only grow; none is rewritten.
CREATE TABLE tuf_metadata (
	tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	repository TEXT COLLATE "C" NOT NULL,
	role       TEXT NOT NULL,
	version    BIGINT NOT NULL,
	body       BYTEA NOT NULL,
	expires_at BIGINT,
	created_at BIGINT,
	PRIMARY KEY (tenant_id, repository, role, version)
);
CREATE INDEX tuf_metadata_expiry ON tuf_metadata (role, expires_at);
