-- Webhooks: a delivery's failure for good counts once in its webhook's run of failures
-- (automatic disabling), however many times it is retried and fails again. failure_counted
-- says it was counted. Deliveries that failed before this migration were counted, but those
-- failed unsent because their webhook was disabled.
ALTER TABLE webhook_deliveries ADD COLUMN failure_counted BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE webhook_deliveries SET failure_counted = TRUE
	WHERE state = 'failed' AND last_error <> 'not sent: the webhook is disabled';
