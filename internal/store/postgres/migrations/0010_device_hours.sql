-- Crash-free hours: each hour a device was up (it checked in, or its uptime at a check-in
-- covers the hour), the deployment it ran then, and whether an application crashed in it.
-- hour is the hour's start in whole hours since the Unix epoch, UTC.
-- IDs use the "C" collation so that they sort bytewise, as on SQLite.
CREATE TABLE device_hours (
	device_id     TEXT COLLATE "C" NOT NULL,
	hour          BIGINT NOT NULL,
	tenant_id     TEXT COLLATE "C" NOT NULL,
	deployment_id TEXT COLLATE "C" NOT NULL,
	crashed       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (device_id, hour)
);
CREATE INDEX device_hours_deployment ON device_hours (tenant_id, deployment_id, hour);
CREATE INDEX device_hours_hour ON device_hours (hour);
