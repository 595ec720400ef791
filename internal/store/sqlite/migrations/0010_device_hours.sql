-- Crash-free hours: each hour a device was up (it checked in, or its uptime at a check-in
-- covers the hour), the deployment it ran then, and whether an application crashed in it.
-- hour is the hour's start in whole hours since the Unix epoch, UTC.
CREATE TABLE device_hours (
	device_id     TEXT NOT NULL,
	hour          INTEGER NOT NULL,
	tenant_id     TEXT NOT NULL,
	deployment_id TEXT NOT NULL,
	crashed       INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (device_id, hour)
) STRICT;
CREATE INDEX device_hours_deployment ON device_hours (tenant_id, deployment_id, hour);
CREATE INDEX device_hours_hour ON device_hours (hour);
