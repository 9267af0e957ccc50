-- What a build-image step pushed, kept with the run: the reference
-- (registry/repository:version) and the manifest digest the registry answered.
ALTER TABLE steps
    ADD COLUMN image        TEXT NOT NULL DEFAULT '',
    ADD COLUMN image_digest TEXT NOT NULL DEFAULT '';
