-- Gray releases by labels (R6 delivery 4) and the instances that watch a set.
--
-- A gray release is a numbered release of kind 'gray' that only watchers
-- whose labels match its selector (and, in clusters, only its targets) get;
-- everyone else keeps the set's latest full release. Promoting it makes it
-- the release for all (config_sets.latest_release moves to it); abandoning
-- it sends the watchers that got it back to the latest full release. Its
-- rule lives beside it, since releases themselves never change.
ALTER TABLE config_releases DROP CONSTRAINT config_releases_kind_check;
ALTER TABLE config_releases ADD CONSTRAINT config_releases_kind_check
    CHECK (kind IN ('publish', 'rollback', 'gray'));

CREATE TABLE config_gray_rules (
    release_id    UUID        PRIMARY KEY REFERENCES config_releases (id) ON DELETE CASCADE,
    config_set_id UUID        NOT NULL REFERENCES config_sets (id) ON DELETE CASCADE,
    tenant_id     UUID        NOT NULL,
    number        BIGINT      NOT NULL,
    -- Kubernetes-style label selector, in its canonical text form.
    selector      TEXT        NOT NULL,
    -- [{"cluster": "...", "partition": "..."}]: where delivery pins the gray release.
    targets       JSONB       NOT NULL DEFAULT '[]',
    -- The full release the others keep (and abandoning returns to).
    base          BIGINT      NOT NULL,
    -- The draft's last editor when it was published: four eyes on promotion.
    editor        TEXT        NOT NULL,
    state         TEXT        NOT NULL CHECK (state IN ('active', 'promoted', 'abandoned')),
    author        TEXT        NOT NULL,
    decided_by    TEXT,
    decided_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (config_set_id, number)
);
-- At most one gray release in flight per set.
CREATE UNIQUE INDEX config_gray_rules_one_active ON config_gray_rules (config_set_id) WHERE state = 'active';

-- Who watches a set, with what labels, holding which release (Apollo's
-- "instances using this config"). Written in batches by the watch, never on
-- the path that notifies.
CREATE TABLE instances (
    id             UUID        NOT NULL UNIQUE,
    tenant_id      UUID        NOT NULL,
    config_set_id  UUID        NOT NULL REFERENCES config_sets (id) ON DELETE CASCADE,
    instance       TEXT        NOT NULL,
    labels         JSONB       NOT NULL DEFAULT '{}',
    ip             TEXT        NOT NULL DEFAULT '',
    release_number BIGINT      NOT NULL DEFAULT 0,
    last_seen      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (config_set_id, instance)
);
CREATE INDEX instances_tenant ON instances (tenant_id);
