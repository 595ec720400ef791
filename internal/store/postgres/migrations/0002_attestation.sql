-- Remote attestation and the certificate authorities.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
-- IDs use the "C" collation so that they sort bytewise, as on SQLite, for keyset paging.

-- A device's state as attestation left it. Rows claimed before this migration are enabled,
-- never activated and never attested.
ALTER TABLE devices ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE devices ADD COLUMN ak_activated BIGINT;
ALTER TABLE devices ADD COLUMN last_attestation BIGINT;
ALTER TABLE devices ADD COLUMN last_result TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN last_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN last_message TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN certificate_expires BIGINT;

-- (tenant_id, id) becomes unique, so that the rows below can reference a device of their
-- tenant. It replaces the plain index on the same columns.
DROP INDEX devices_tenant;
CREATE UNIQUE INDEX devices_tenant ON devices (tenant_id, id);

ALTER TABLE device_groups ADD COLUMN cert_lifetime BIGINT NOT NULL DEFAULT 0; -- seconds, 0 for the default

-- os_release_id is not a foreign key: the history outlives the releases it names.
CREATE TABLE attestations (
	id                  TEXT COLLATE "C" PRIMARY KEY, -- UUIDv7, so the newest sorts last
	tenant_id           TEXT COLLATE "C" NOT NULL,
	device_id           TEXT COLLATE "C" NOT NULL,
	at                  BIGINT,
	result              TEXT NOT NULL,
	reason              TEXT NOT NULL,
	message             TEXT NOT NULL,
	os_release_id       TEXT COLLATE "C" NOT NULL,
	measurements        TEXT NOT NULL,
	certificate_serial  TEXT NOT NULL,
	certificate_expires BIGINT,
	FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);
CREATE INDEX attestations_device ON attestations (device_id, id);

-- Only the SHA-256 of a nonce is kept.
CREATE TABLE nonces (
	hash            BYTEA PRIMARY KEY,
	tenant_id       TEXT COLLATE "C" NOT NULL,
	device_id       TEXT COLLATE "C" NOT NULL,
	activation_hash BYTEA,
	created_at      BIGINT,
	expires_at      BIGINT NOT NULL,
	FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);
CREATE INDEX nonces_expires ON nonces (expires_at);
CREATE INDEX nonces_device ON nonces (device_id);

-- measurements is a JSON object of name to lowercase hex SHA-256. Versions compare exactly.
CREATE TABLE os_releases (
	id           TEXT COLLATE "C" PRIMARY KEY,
	tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	version      TEXT COLLATE "C" NOT NULL,
	description  TEXT NOT NULL,
	measurements TEXT NOT NULL,
	created_by   TEXT NOT NULL,
	created_at   BIGINT,
	UNIQUE (tenant_id, version)
);
CREATE INDEX os_releases_tenant ON os_releases (tenant_id, id);

-- tenant_id is NULL for the service root.
CREATE TABLE ca_certificates (
	id             TEXT COLLATE "C" PRIMARY KEY,
	tenant_id      TEXT COLLATE "C" REFERENCES tenants (id),
	cert_der       BYTEA,
	key_ciphertext BYTEA, -- NULL when the key is held offline
	not_before     BIGINT,
	not_after      BIGINT,
	active_from    BIGINT,
	revoked_at     BIGINT,
	created_at     BIGINT
);
CREATE INDEX ca_certificates_tenant ON ca_certificates (tenant_id, created_at);
