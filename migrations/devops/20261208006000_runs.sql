-- Pipelines get a definition (stored YAML, or read from the repository at the
-- commit), an application they deliver, and a build counter for versions.
ALTER TABLE pipelines
    ADD COLUMN application_id UUID,
    ADD COLUMN definition TEXT,
    ADD COLUMN definition_source TEXT NOT NULL DEFAULT 'platform'
        CHECK (definition_source IN ('platform', 'repository')),
    ADD COLUMN builds BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN next_schedule_at TIMESTAMPTZ;

-- Webhook endpoints: the secret verifies deliveries (GitLab compares it, GitHub
-- and Gitea sign with it), so it is kept as given and shown only at creation.
CREATE TABLE webhooks (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    pipeline_id UUID NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    format      TEXT NOT NULL CHECK (format IN ('gitlab', 'github')),
    secret      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_pipeline ON webhooks (pipeline_id);

-- Every delivery, accepted or not. An accepted delivery id is unique per hook,
-- which is what makes a replay run nothing twice; refusals are only recorded.
CREATE TABLE deliveries (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    webhook_id  UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    event       TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('queued', 'ignored', 'refused')),
    reason      TEXT NOT NULL DEFAULT '',
    run_id      UUID,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (webhook_id, delivery_id) WHERE outcome <> 'refused';

-- Runners execute steps; the token is kept as its SHA-256 only.
CREATE TABLE runners (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    name           TEXT NOT NULL,
    token_sha256   BYTEA NOT NULL UNIQUE,
    state          TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining')),
    concurrency    INT NOT NULL DEFAULT 0,
    sandbox        TEXT NOT NULL DEFAULT '',
    last_seen_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE runs (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL,
    pipeline_id   UUID NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    application_id UUID,
    number        BIGINT NOT NULL,
    git_ref       TEXT NOT NULL,
    branch        TEXT NOT NULL,
    commit_sha    TEXT NOT NULL,
    version       TEXT NOT NULL DEFAULT '',
    trigger       TEXT NOT NULL CHECK (trigger IN ('webhook', 'manual', 'schedule')),
    triggered_by  TEXT NOT NULL,
    parameters    JSONB NOT NULL DEFAULT '{}',
    -- The checked definition the run follows, fixed when it is planned.
    definition    JSONB,
    state         TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    message       TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    UNIQUE (pipeline_id, number)
);
CREATE INDEX runs_active ON runs (state) WHERE state IN ('queued', 'running');
CREATE INDEX runs_tenant ON runs (tenant_id, id);

CREATE TABLE stages (
    id          UUID PRIMARY KEY,
    run_id      UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tenant_id   UUID NOT NULL,
    position    INT NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
    started_at  TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    UNIQUE (run_id, position)
);

CREATE TABLE steps (
    id            UUID PRIMARY KEY,
    run_id        UUID NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stage_id      UUID NOT NULL REFERENCES stages (id) ON DELETE CASCADE,
    tenant_id     UUID NOT NULL,
    position      INT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    spec          JSONB NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'skipped')),
    attempt       INT NOT NULL DEFAULT 0,
    runner_id     UUID,
    -- A running step's runner must renew this; past it the runner is dead.
    lease_until   TIMESTAMPTZ,
    exit_code     INT,
    message       TEXT NOT NULL DEFAULT '',
    -- The tail of the output (characters), at most the log limit; log_length counts
    -- every character ever written, so offsets stay valid as the head is dropped.
    log           TEXT NOT NULL DEFAULT '',
    log_length    BIGINT NOT NULL DEFAULT 0,
    tests_total   INT,
    tests_failed  INT,
    tests_skipped INT,
    test_failures JSONB NOT NULL DEFAULT '[]',
    queued_at     TIMESTAMPTZ,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    UNIQUE (stage_id, position)
);
CREATE INDEX steps_queued ON steps (tenant_id, queued_at) WHERE state = 'queued';
CREATE INDEX steps_leased ON steps (lease_until) WHERE state = 'running';

CREATE TABLE approvals (
    step_id    UUID NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    tenant_id  UUID NOT NULL,
    approver   TEXT NOT NULL,
    decision   TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
    comment    TEXT NOT NULL DEFAULT '',
    decided_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (step_id, approver)
);
