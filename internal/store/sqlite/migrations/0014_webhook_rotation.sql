-- Webhooks: secret rotation, automatic disabling, and deliveries sent again.
-- previous_secret is the secret a rotation replaced (sealed as secret is); deliveries are signed
-- with it too until previous_secret_until. failing_since and failed_deliveries are the current
-- run of deliveries that failed for good with no successful attempt between them; disabled_at
-- (NULL: enabled) and disabled_reason record a webhook the service stopped sending to.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN previous_secret_until INTEGER;
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
ALTER TABLE webhooks ADD COLUMN failed_deliveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';

-- A delivery may now send an event again (redelivery_of: the delivery it repeats, with the
-- same event ID), so an event reaches a webhook once only among first deliveries. SQLite cannot
-- drop a table's UNIQUE constraint: the table is rebuilt without it.
CREATE TABLE webhook_deliveries_new (
	id              TEXT PRIMARY KEY,
	tenant_id       TEXT NOT NULL,
	webhook_id      TEXT NOT NULL REFERENCES webhooks (id),
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	payload         BLOB NOT NULL, -- the JSON body, as signed
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL,
	next_attempt_at INTEGER,
	lease_owner     TEXT NOT NULL,
	lease_until     INTEGER,
	last_status     INTEGER NOT NULL, -- the last response's HTTP status, 0 for none
	last_error      TEXT NOT NULL,
	created_at      INTEGER,
	updated_at      INTEGER,
	redelivery_of   TEXT NOT NULL DEFAULT '' -- the delivery this one sends again, '' for an event's first
) STRICT;
INSERT INTO webhook_deliveries_new (id, tenant_id, webhook_id, event_id, event_type, payload, state, attempts,
	next_attempt_at, lease_owner, lease_until, last_status, last_error, created_at, updated_at)
	SELECT id, tenant_id, webhook_id, event_id, event_type, payload, state, attempts, next_attempt_at, lease_owner,
	lease_until, last_status, last_error, created_at, updated_at FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_id) WHERE redelivery_of = '';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_updated ON webhook_deliveries (updated_at);
