-- Error reports: the events devices upload (crashes, exits, OOM kills, sandbox denials, failed
-- updates, rollbacks, attestation failures, restarts) and how many each device's queue dropped.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.

-- One event. (device_id, id) is unique: id is the device's own event ID, so a retried upload
-- stores nothing twice. The group, product and deployment are the device's when the event
-- arrived. signo 0 means no signal, exit_code -1 no exit code. Untrusted: the device says it.
CREATE TABLE error_reports (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id       TEXT NOT NULL,
	device_id       TEXT NOT NULL REFERENCES devices (id),
	id              TEXT NOT NULL,
	device_group_id TEXT NOT NULL,
	product_id      TEXT NOT NULL,
	deployment_id   TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	component_id    TEXT NOT NULL,
	image_id        TEXT NOT NULL,
	signo           INTEGER NOT NULL,
	exit_code       INTEGER NOT NULL,
	phase           TEXT NOT NULL,
	reason          TEXT NOT NULL,
	message         TEXT NOT NULL,
	at              INTEGER,
	received_at     INTEGER,
	UNIQUE (device_id, id)
) STRICT;
CREATE INDEX error_reports_tenant ON error_reports (tenant_id, seq);
CREATE INDEX error_reports_time ON error_reports (tenant_id, at);
CREATE INDEX error_reports_received ON error_reports (received_at);

-- The total number of events a device's queue dropped before upload, as it last said (the
-- greatest total kept).
CREATE TABLE error_report_drops (
	device_id  TEXT PRIMARY KEY REFERENCES devices (id),
	tenant_id  TEXT NOT NULL,
	dropped    INTEGER NOT NULL,
	updated_at INTEGER
) STRICT;
