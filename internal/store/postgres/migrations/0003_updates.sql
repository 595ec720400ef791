-- Renewable security: which tenant owns each component, the images uploaded, the device groups'
-- deployments and the tenants' signing keys.
-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
-- IDs use the "C" collation so that they sort bytewise, as on SQLite, for keyset paging.

-- A component ID belongs to the tenant that uploaded its first image, for good.
CREATE TABLE components (
	id         TEXT COLLATE "C" PRIMARY KEY,
	tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	created_at BIGINT,
	UNIQUE (tenant_id, id)
);

-- An image's component must be its tenant's. Digests are lowercase hex SHA-256; metadata is
-- the package metadata as signed.
CREATE TABLE images (
	id             TEXT COLLATE "C" PRIMARY KEY,
	tenant_id      TEXT COLLATE "C" NOT NULL,
	component_id   TEXT COLLATE "C" NOT NULL,
	kind           TEXT NOT NULL,
	name           TEXT NOT NULL,
	version        TEXT NOT NULL,
	payload_sha256 TEXT NOT NULL,
	payload_size   BIGINT NOT NULL,
	package_sha256 TEXT NOT NULL,
	package_size   BIGINT NOT NULL,
	metadata       BYTEA,
	development    BOOLEAN NOT NULL,
	uploaded_by    TEXT NOT NULL,
	created_at     BIGINT,
	UNIQUE (tenant_id, id),
	FOREIGN KEY (tenant_id, component_id) REFERENCES components (tenant_id, id)
);
CREATE INDEX images_component ON images (tenant_id, component_id, id);
CREATE INDEX images_kind ON images (tenant_id, kind, id);
-- Which images a stored package file belongs to, for collecting unused blobs.
CREATE INDEX images_package ON images (package_sha256);

-- A deployment's group must be of its tenant. Deployments are history: none is deleted, and a
-- group that has one cannot be.
CREATE TABLE deployments (
	id              TEXT COLLATE "C" PRIMARY KEY, -- UUIDv7, so the newest sorts last
	tenant_id       TEXT COLLATE "C" NOT NULL,
	device_group_id TEXT COLLATE "C" NOT NULL,
	created_by      TEXT NOT NULL,
	created_at      BIGINT,
	UNIQUE (tenant_id, id),
	FOREIGN KEY (tenant_id, device_group_id) REFERENCES device_groups (tenant_id, id)
);
CREATE INDEX deployments_group ON deployments (device_group_id, id);

-- A deployment's images, in order from position 0; each of the deployment's tenant.
CREATE TABLE deployment_images (
	deployment_id TEXT COLLATE "C" NOT NULL,
	position      INTEGER NOT NULL,
	tenant_id     TEXT COLLATE "C" NOT NULL,
	image_id      TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (deployment_id, position),
	FOREIGN KEY (tenant_id, deployment_id) REFERENCES deployments (tenant_id, id),
	FOREIGN KEY (tenant_id, image_id) REFERENCES images (tenant_id, id)
);
CREATE INDEX deployment_images_image ON deployment_images (image_id);

-- key_ciphertext is the private key sealed with the service's key-encryption key, NULL when
-- the key is held offline.
CREATE TABLE signing_keys (
	id             TEXT COLLATE "C" PRIMARY KEY, -- lowercase hex SHA-256 of the public key's DER SPKI
	tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
	purpose        TEXT NOT NULL,
	public_der     BYTEA,
	key_ciphertext BYTEA,
	created_at     BIGINT,
	revoked_at     BIGINT
);
CREATE INDEX signing_keys_tenant ON signing_keys (tenant_id, purpose, created_at);
