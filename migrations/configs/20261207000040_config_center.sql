-- The config center's core (R6): levels (base / environment / cluster),
-- shared sets, drafts with a version, immutable numbered releases, per-tenant
-- data keys for secrets, and per-environment publishing rules.

-- Empty environment: the base level; empty cluster: the environment level.
ALTER TABLE config_sets
    ADD COLUMN cluster        TEXT    NOT NULL DEFAULT '',
    ADD COLUMN shared         BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN draft_version  BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN last_editor    TEXT,
    ADD COLUMN latest_release BIGINT  NOT NULL DEFAULT 0,
    ADD CONSTRAINT config_sets_cluster_needs_environment CHECK (cluster = '' OR environment <> '');
ALTER TABLE config_sets DROP CONSTRAINT config_sets_tenant_id_application_environment_key;
ALTER TABLE config_sets ADD CONSTRAINT config_sets_address UNIQUE (tenant_id, application, environment, cluster);

-- The draft: what the next publish releases. A secret item's content is
-- sealed under its tenant's data key (`sealed`), never kept in `content`.
CREATE TABLE config_draft_items (
    config_set_id UUID    NOT NULL REFERENCES config_sets (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    format        TEXT    NOT NULL,
    secret        BOOLEAN NOT NULL,
    content       TEXT,
    sealed        BYTEA,
    PRIMARY KEY (config_set_id, name),
    CHECK ((secret AND content IS NULL AND sealed IS NOT NULL) OR (NOT secret AND content IS NOT NULL AND sealed IS NULL))
);

CREATE TABLE config_releases (
    id            UUID        PRIMARY KEY,
    config_set_id UUID        NOT NULL REFERENCES config_sets (id) ON DELETE CASCADE,
    tenant_id     UUID        NOT NULL,
    number        BIGINT      NOT NULL,
    message       TEXT        NOT NULL,
    author        TEXT        NOT NULL,
    kind          TEXT        NOT NULL CHECK (kind IN ('publish', 'rollback')),
    restores      BIGINT      NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (config_set_id, number)
);

CREATE TABLE config_release_items (
    release_id UUID    NOT NULL REFERENCES config_releases (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    format     TEXT    NOT NULL,
    secret     BOOLEAN NOT NULL,
    content    TEXT,
    sealed     BYTEA,
    PRIMARY KEY (release_id, name),
    CHECK ((secret AND content IS NULL AND sealed IS NOT NULL) OR (NOT secret AND content IS NOT NULL AND sealed IS NULL))
);

-- A release never changes: only deleting its whole config set removes it.
CREATE FUNCTION config_releases_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'releases are immutable' USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER config_releases_immutable BEFORE UPDATE ON config_releases
    FOR EACH ROW EXECUTE FUNCTION config_releases_are_immutable();
CREATE TRIGGER config_release_items_immutable BEFORE UPDATE ON config_release_items
    FOR EACH ROW EXECUTE FUNCTION config_releases_are_immutable();

-- Shared sets an application's configuration is built on, lowest first.
CREATE TABLE config_shared_links (
    tenant_id   UUID   NOT NULL,
    application TEXT   NOT NULL,
    position    INT    NOT NULL,
    shared      TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, application, position),
    UNIQUE (tenant_id, application, shared)
);

-- A tenant's data key, sealed by the platform master key `master_key_id`.
-- Rotating the master key re-seals these rows only.
CREATE TABLE tenant_data_keys (
    tenant_id     UUID        PRIMARY KEY,
    master_key_id TEXT        NOT NULL,
    sealed        BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    rewrapped_at  TIMESTAMPTZ
);

-- Publishing rules per environment; no row: four-eyes only for production.
CREATE TABLE config_environments (
    tenant_id   UUID    NOT NULL,
    environment TEXT    NOT NULL,
    four_eyes   BOOLEAN NOT NULL,
    PRIMARY KEY (tenant_id, environment)
);
