-- A tenant's attestation policy generation: raised, in the same transaction, by every write
-- to the tenant's OS releases or device groups. The attestation service reads it with the
-- device and keeps its copy of the releases and groups only while it is unchanged, so a
-- change takes effect at the next attestation on every replica.
ALTER TABLE tenants ADD COLUMN policy_generation BIGINT NOT NULL DEFAULT 0;
