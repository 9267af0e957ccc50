-- What the conductor's own steps (deploy, security-scan, promote) started
-- outside devops, so a restart resumes them instead of starting them again:
-- the release apps made, the scan the image catalog runs, the digest acted
-- on. Kept apart from `steps` (and without foreign keys to it) because this
-- file's version sorts before the one that creates `steps`.
CREATE TABLE step_operations (
    step_id        UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    run_id         UUID NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('deploy', 'security-scan', 'promote')),
    environment    TEXT NOT NULL DEFAULT '',
    application_id UUID,
    release_id     UUID,
    template_version_id TEXT NOT NULL DEFAULT '',
    image          TEXT NOT NULL DEFAULT '',
    digest         TEXT NOT NULL DEFAULT '',
    -- security-scan: the highest severity found, and whether it passed.
    severity       TEXT NOT NULL DEFAULT '',
    passed         BOOLEAN,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX step_operations_run ON step_operations (run_id, kind);

-- Per-branch environments: a `feature-*` branch's own application, made on
-- the branch's first deploy from the pipeline's dev application and removed
-- when the branch is deleted or merged.
CREATE TABLE branch_environments (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL,
    pipeline_id    UUID NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    branch         TEXT NOT NULL,
    application_id UUID NOT NULL,
    application    TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'removing', 'removed')),
    message        TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    removed_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX branch_environments_live ON branch_environments (pipeline_id, branch) WHERE state <> 'removed';
CREATE INDEX branch_environments_removing ON branch_environments (state) WHERE state = 'removing';
