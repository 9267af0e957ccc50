-- Applications and their releases. A release is the persisted operation of
-- a deploy: the release driver advances it wave by wave (services in
-- dependency order) until every service's binding is Healthy, and a restart
-- resumes it where it stood.
CREATE TABLE applications (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL,
    project_id       UUID,
    name             TEXT NOT NULL,
    environment      TEXT NOT NULL CHECK (environment IN ('production', 'test')),
    state            TEXT NOT NULL DEFAULT 'deploying'
                     CHECK (state IN ('awaiting-approval', 'deploying', 'running', 'failed', 'stopped')),
    current_release  INTEGER,            -- the last release that succeeded
    replicas         JSONB NOT NULL DEFAULT '{}',  -- service -> replicas set by scaling (overrides the spec)
    stopped_replicas JSONB,              -- service -> replicas before a stop
    bindings         JSONB NOT NULL DEFAULT '{}',  -- service -> federation binding id
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE releases (
    id                  UUID PRIMARY KEY,
    application_id      UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    tenant_id           UUID NOT NULL,
    number              INTEGER NOT NULL,
    template_version_id UUID NOT NULL,
    parameters          JSONB NOT NULL,
    placement           JSONB NOT NULL,
    strategy            JSONB NOT NULL,
    objects             JSONB NOT NULL,   -- rendered, grouped by service
    waves               JSONB NOT NULL,   -- [[service, ...], ...]
    state               TEXT NOT NULL
                        CHECK (state IN ('awaiting-approval', 'deploying', 'succeeded', 'failed', 'superseded', 'cancelled')),
    wave                INTEGER NOT NULL DEFAULT 0,   -- the wave being deployed
    applied_wave        INTEGER NOT NULL DEFAULT -1,  -- the last wave whose bindings were applied
    message             TEXT NOT NULL DEFAULT '',
    rollback_of         INTEGER,          -- the release this one returns to
    created_by          TEXT NOT NULL,
    approved_by         TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    next_check_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until       TIMESTAMPTZ,
    UNIQUE (application_id, number)
);
CREATE INDEX releases_due ON releases (next_check_at) WHERE state = 'deploying';
CREATE INDEX releases_tenant ON releases (tenant_id);

-- Node ports drawn from (or claimed in) the platform's pool: a port is held
-- by one application's service on every cluster.
CREATE TABLE node_ports (
    port           INTEGER PRIMARY KEY CHECK (port BETWEEN 1024 AND 65535),
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    tenant_id      UUID NOT NULL,
    service        TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    UNIQUE (application_id, service, container_port)
);

-- Every change of a service's replica count, with why and by whom.
CREATE TABLE scale_events (
    id             UUID PRIMARY KEY,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    tenant_id      UUID NOT NULL,
    service        TEXT NOT NULL,
    from_replicas  INTEGER,
    to_replicas    INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
