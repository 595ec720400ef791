-- Webhooks: a tenant's endpoints that hear of new error-report buckets and rollout state
-- changes, and the durable outbox of deliveries to them. A delivery is written in the same
-- transaction as the change that causes it, so nothing committed is lost across a restart.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
CREATE TABLE webhooks (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id),
	url        TEXT NOT NULL,
	events     TEXT NOT NULL, -- event types, comma-separated
	secret     TEXT NOT NULL, -- the HMAC-SHA256 key, as shown once at creation
	created_by TEXT NOT NULL,
	created_at INTEGER
) STRICT;
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

-- One event to one webhook. state is pending, delivered or failed. A worker claims a pending
-- delivery that is due by writing lease_owner and lease_until; another worker may claim it only
-- once that lease has expired.
CREATE TABLE webhook_deliveries (
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
	UNIQUE (webhook_id, event_id)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_updated ON webhook_deliveries (updated_at);

-- Ingest asks whether a tenant has any report in a bucket, to tell webhooks of new buckets.
CREATE INDEX error_reports_bucket ON error_reports (tenant_id, event_type, component_id, image_id, signo, exit_code);
