-- Webhooks: secret rotation, automatic disabling, and deliveries sent again.
-- previous_secret is the secret a rotation replaced (sealed as secret is); deliveries are signed
-- with it too until previous_secret_until. failing_since and failed_deliveries are the current
-- run of deliveries that failed for good with no successful attempt between them; disabled_at
-- (NULL: enabled) and disabled_reason record a webhook the service stopped sending to.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN previous_secret_until BIGINT;
ALTER TABLE webhooks ADD COLUMN failing_since BIGINT;
ALTER TABLE webhooks ADD COLUMN failed_deliveries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN disabled_at BIGINT;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';

-- A delivery may now send an event again (redelivery_of: the delivery it repeats, with the
-- same event ID), so an event reaches a webhook once only among first deliveries.
ALTER TABLE webhook_deliveries ADD COLUMN redelivery_of TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_webhook_id_event_id_key;
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_id) WHERE redelivery_of = '';
