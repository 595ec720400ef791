-- Anti-rollback on the service's side: an OS release's security version (from its image's
-- signed metadata; 0 for a release registered by hand), and the highest security version
-- each device has reported committing. Attestation refuses a device that measures a release
-- below its own counter: a device whose disk was put back to an older signed release.
ALTER TABLE os_releases ADD COLUMN security_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN security_counter INTEGER NOT NULL DEFAULT 0;
