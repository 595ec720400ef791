-- Button presses asked for from the console for emulated devices' boards, waiting for the
-- device's next check-in, which takes them. Times are microseconds since the Unix epoch, UTC.
-- IDs use the "C" collation so that they sort bytewise, as on SQLite.
CREATE TABLE board_presses (
	device_id  TEXT COLLATE "C" NOT NULL,
	seq        BIGINT NOT NULL,
	tenant_id  TEXT COLLATE "C" NOT NULL,
	button     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (device_id, seq)
);
