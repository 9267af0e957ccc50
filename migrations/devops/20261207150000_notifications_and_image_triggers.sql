-- Notification targets: where devops tells people that a run failed, an
-- approval waits for them or production was deployed. A target without a
-- pipeline covers every pipeline of its tenant.
CREATE TABLE notification_targets (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    pipeline_id UUID REFERENCES pipelines (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
    -- A webhook's URL and HMAC secret (the secret is shown once, at creation).
    url         TEXT NOT NULL DEFAULT '',
    secret      TEXT NOT NULL DEFAULT '',
    -- An e-mail target's recipient.
    address     TEXT NOT NULL DEFAULT '',
    events      TEXT[] NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX notification_targets_tenant ON notification_targets (tenant_id, pipeline_id);

-- One notification per target and cause (the devops event behind it), kept
-- until delivered: an outbox of its own, so a restart loses nothing and a
-- redelivered event notifies nobody twice.
CREATE TABLE notifications (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL,
    target_id       UUID NOT NULL REFERENCES notification_targets (id) ON DELETE CASCADE,
    run_id          UUID NOT NULL,
    event           TEXT NOT NULL CHECK (event IN ('run.failed', 'approval.needed', 'production.deployed')),
    cause           UUID NOT NULL,
    payload         JSONB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    UNIQUE (target_id, cause, event)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_target ON notifications (target_id, created_at);

-- Image triggers: a pipeline runs when the image catalog announces a pushed
-- tag whose repository and tag match these globs.
CREATE TABLE image_triggers (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    pipeline_id UUID NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    repository  TEXT NOT NULL,
    tags        TEXT NOT NULL,
    -- The ref the run builds (`refs/heads/main`).
    git_ref     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX image_triggers_tenant ON image_triggers (tenant_id);

-- Each catalog event a trigger took, once: the same event redelivered, or
-- announced twice by the images relay, starts nothing more.
CREATE TABLE image_trigger_firings (
    trigger_id UUID NOT NULL REFERENCES image_triggers (id) ON DELETE CASCADE,
    event_id   UUID NOT NULL,
    tenant_id  UUID NOT NULL,
    run_id     UUID NOT NULL,
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (trigger_id, event_id)
);
