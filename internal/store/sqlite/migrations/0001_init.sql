-- Times are microseconds since the Unix epoch, UTC; NULL is the zero time.
-- name_key is the lower-cased name that uniqueness is decided on.

CREATE TABLE tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	name_key   TEXT NOT NULL UNIQUE,
	created_at INTEGER
) STRICT;

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	name_key      TEXT NOT NULL UNIQUE,
	service_admin INTEGER NOT NULL,
	created_at    INTEGER
) STRICT;

CREATE TABLE tokens (
	id          TEXT PRIMARY KEY,
	user_id     TEXT NOT NULL REFERENCES users (id),
	tenant_id   TEXT REFERENCES tenants (id),
	hash        BLOB NOT NULL UNIQUE,
	description TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	created_at  INTEGER,
	expires_at  INTEGER,
	revoked_at  INTEGER
) STRICT;
CREATE INDEX tokens_user ON tokens (user_id, id);
CREATE INDEX tokens_tenant ON tokens (tenant_id, id);

CREATE TABLE roles (
	tenant_id  TEXT NOT NULL REFERENCES tenants (id),
	user_id    TEXT NOT NULL REFERENCES users (id),
	role       TEXT NOT NULL,
	created_at INTEGER,
	updated_at INTEGER,
	PRIMARY KEY (tenant_id, user_id)
) STRICT;
CREATE INDEX roles_user ON roles (user_id, tenant_id);

CREATE TABLE products (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL REFERENCES tenants (id),
	name        TEXT NOT NULL,
	name_key    TEXT NOT NULL,
	description TEXT NOT NULL,
	created_at  INTEGER,
	updated_at  INTEGER,
	UNIQUE (tenant_id, name_key),
	UNIQUE (tenant_id, id)
) STRICT;

-- A group's product must be of the group's tenant.
CREATE TABLE device_groups (
	id                TEXT PRIMARY KEY,
	tenant_id         TEXT NOT NULL,
	product_id        TEXT NOT NULL,
	name              TEXT NOT NULL,
	name_key          TEXT NOT NULL,
	description       TEXT NOT NULL,
	os_feed           TEXT NOT NULL,
	update_policy     TEXT NOT NULL,
	check_in_interval INTEGER NOT NULL, -- seconds
	created_at        INTEGER,
	updated_at        INTEGER,
	UNIQUE (product_id, name_key),
	UNIQUE (tenant_id, id),
	FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
) STRICT;
CREATE INDEX device_groups_product ON device_groups (tenant_id, product_id, id);

-- A device's group, if it has one, must be of the device's tenant.
CREATE TABLE devices (
	id              TEXT PRIMARY KEY,
	tenant_id       TEXT NOT NULL REFERENCES tenants (id),
	device_group_id TEXT,
	root_of_trust   TEXT NOT NULL,
	agent_version   TEXT NOT NULL,
	ek_public       BLOB,
	ek_certificate  BLOB,
	ak_public       BLOB,
	enrollment      BLOB,
	claimed_by      TEXT NOT NULL,
	claimed_at      INTEGER,
	updated_at      INTEGER,
	FOREIGN KEY (tenant_id, device_group_id) REFERENCES device_groups (tenant_id, id)
) STRICT;
CREATE INDEX devices_tenant ON devices (tenant_id, id);
CREATE INDEX devices_group ON devices (device_group_id, id);

CREATE TABLE audit (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	tenant_id     TEXT NOT NULL, -- '' for service-level entries
	at            INTEGER,
	actor_id      TEXT NOT NULL,
	actor_name    TEXT NOT NULL,
	action        TEXT NOT NULL,
	resource_type TEXT NOT NULL,
	resource_id   TEXT NOT NULL,
	result        TEXT NOT NULL,
	error_code    TEXT NOT NULL,
	message       TEXT NOT NULL,
	details       TEXT NOT NULL
) STRICT;
CREATE INDEX audit_tenant ON audit (tenant_id, seq);
