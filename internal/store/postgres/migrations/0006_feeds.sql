-- OS feeds: an OS release made from an uploaded OS image names that image, and is published to
-- a feed (Retail or RetailEval) before devices may run it; a release registered by hand has
-- feed '' and is accepted for every group.
ALTER TABLE os_releases ADD COLUMN feed TEXT NOT NULL DEFAULT '';
ALTER TABLE os_releases ADD COLUMN image_id TEXT COLLATE "C";
CREATE INDEX os_releases_feed ON os_releases (tenant_id, feed);
