-- Health-gated rollouts: a deployment made with a rollout policy is released to its group's
-- devices batch by batch; devices not yet released keep the previous deployment.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
CREATE TABLE rollouts (
	deployment_id          TEXT PRIMARY KEY REFERENCES deployments (id),
	tenant_id              TEXT NOT NULL,
	device_group_id        TEXT NOT NULL,
	previous_deployment_id TEXT NOT NULL,
	policy                 BLOB NOT NULL, -- JSON v1.RolloutPolicy
	state                  TEXT NOT NULL, -- running, paused, completed, aborted
	batch                  INTEGER NOT NULL,
	reason                 TEXT NOT NULL,
	revert_deployment_id   TEXT NOT NULL,
	created_at             INTEGER,
	batch_started_at       INTEGER,
	updated_at             INTEGER
) STRICT;
CREATE INDEX rollouts_group ON rollouts (tenant_id, device_group_id, state);
CREATE INDEX rollouts_state ON rollouts (state, created_at);

-- The batch of each device of a rollout, and when it was released (NULL: held).
CREATE TABLE rollout_devices (
	deployment_id TEXT NOT NULL REFERENCES rollouts (deployment_id),
	device_id     TEXT NOT NULL,
	batch         INTEGER NOT NULL,
	released_at   INTEGER,
	PRIMARY KEY (deployment_id, device_id)
) STRICT;
