-- Image triggers: a pushed tag matching `tags` (a semver range or a glob) in
-- `repository` releases the application with the tag as `parameter`.
CREATE TABLE image_triggers (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    application_id UUID NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    repository     TEXT NOT NULL,
    tags           TEXT NOT NULL,
    parameter      TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX image_triggers_repository ON image_triggers (tenant_id, repository);
CREATE INDEX image_triggers_application ON image_triggers (application_id, id);

-- Each tag a trigger took, once: the same tag pushed again (or its event
-- delivered again) makes no second release.
CREATE TABLE image_trigger_firings (
    trigger_id      UUID NOT NULL REFERENCES image_triggers (id) ON DELETE CASCADE,
    tag             TEXT NOT NULL,
    digest          TEXT NOT NULL,
    tenant_id       UUID NOT NULL,
    application_id  UUID NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'released', 'failed')),
    release_id      UUID,
    message         TEXT NOT NULL DEFAULT '',
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (trigger_id, tag)
);
CREATE INDEX image_trigger_firings_due ON image_trigger_firings (next_attempt_at) WHERE state = 'pending';
