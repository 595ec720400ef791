-- Button presses asked for from the console for emulated devices' boards, waiting for the
-- device's next check-in, which takes them. Times are microseconds since the Unix epoch, UTC.
CREATE TABLE board_presses (
	device_id  TEXT NOT NULL,
	seq        INTEGER NOT NULL,
	tenant_id  TEXT NOT NULL,
	button     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (device_id, seq)
) STRICT;
