-- Check-in and update metadata: what each device last reported, and the signed TUF metadata of
-- every repository (a tenant's image repository, each device group's director).
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.

-- A device's latest check-in report (tenant_id is the device's), as validated at the API
-- boundary (JSON; untrusted: the device says it).
CREATE TABLE device_reports (
	device_id     TEXT PRIMARY KEY REFERENCES devices (id),
	tenant_id     TEXT NOT NULL,
	report        BLOB NOT NULL,
	checked_in_at INTEGER
) STRICT;

-- Signed metadata, one row per role version. repository is "images" or "director/<group ID>";
-- role is root, targets, snapshot or timestamp. Versions only grow; none is rewritten.
CREATE TABLE tuf_metadata (
	tenant_id  TEXT NOT NULL REFERENCES tenants (id),
	repository TEXT NOT NULL,
	role       TEXT NOT NULL,
	version    INTEGER NOT NULL,
	body       BLOB NOT NULL,
	expires_at INTEGER,
	created_at INTEGER,
	PRIMARY KEY (tenant_id, repository, role, version)
) STRICT;
CREATE INDEX tuf_metadata_expiry ON tuf_metadata (role, expires_at);
