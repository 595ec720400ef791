-- Health-gated rollouts: a deployment made with a rollout policy is released to its group's
-- devices batch by batch; devices not yet released keep the previous deployment.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
-- IDs use the "C" collation so that they sort bytewise, as on SQLite.
CREATE TABLE rollouts (
	deployment_id          TEXT COLLATE "C" PRIMARY KEY REFERENCES deployments (id),
	tenant_id              TEXT COLLATE "C" NOT NULL,
	device_group_id        TEXT COLLATE "C" NOT NULL,
	previous_deployment_id TEXT COLLATE "C" NOT NULL,
	policy                 BYTEA NOT NULL, -- JSON v1.RolloutPolicy
	state                  TEXT NOT NULL, -- running, paused, completed, aborted
	batch                  BIGINT NOT NULL,
	reason                 TEXT NOT NULL,
	revert_deployment_id   TEXT COLLATE "C" NOT NULL,
	created_at             BIGINT,
	batch_started_at       BIGINT,
	updated_at             BIGINT
);
CREATE INDEX rollouts_group ON rollouts (tenant_id, device_group_id, state);
CREATE INDEX rollouts_state ON rollouts (state, created_at);

-- The batch of each device of a rollout, and when it was released (NULL: held).
CREATE TABLE rollout_devices (
	deployment_id TEXT COLLATE "C" NOT NULL REFERENCES rollouts (deployment_id),
	device_id     TEXT COLLATE "C" NOT NULL,
	batch         BIGINT NOT NULL,
	released_at   BIGINT,
	PRIMARY KEY (deployment_id, device_id)
);
