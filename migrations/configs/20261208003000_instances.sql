-- Which watcher instance holds which release of a config set (Apollo's
-- "instances using this config"). A watcher names itself (`instance`, chosen
-- by the client) and its labels when it watches; the row is refreshed on
-- every watch, so `last_seen` tells live instances from gone ones.
CREATE TABLE instances (
    tenant_id      UUID        NOT NULL,
    config_set_id  UUID        NOT NULL REFERENCES config_sets (id) ON DELETE CASCADE,
    instance       TEXT        NOT NULL,
    labels         JSONB       NOT NULL DEFAULT '{}',
    ip             TEXT        NOT NULL DEFAULT '',
    release_number BIGINT      NOT NULL,
    last_seen      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (config_set_id, instance)
);
CREATE INDEX instances_tenant ON instances (tenant_id);
