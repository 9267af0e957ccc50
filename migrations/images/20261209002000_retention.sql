-- Retention (R7): one rule per repository, the runs that apply it (each a
-- persisted operation: what it decided to delete, then what it deleted, so a
-- run cut short by a restart resumes), and the registry's garbage
-- collections that free the space deleted manifests leave behind.
CREATE TABLE retention_rules (
    repository_id UUID PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    tenant_id     UUID NOT NULL,
    -- Keep the N most recently pushed tags (NULL: no such limit).
    keep_last     INTEGER CHECK (keep_last IS NULL OR keep_last >= 1),
    -- Never delete a released tag.
    keep_released BOOLEAN NOT NULL DEFAULT true,
    -- Delete manifests no tag points at any more after N days (NULL: keep them).
    untagged_days INTEGER CHECK (untagged_days IS NULL OR untagged_days >= 0),
    next_run_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX retention_rules_due ON retention_rules (next_run_at);
CREATE INDEX retention_rules_tenant ON retention_rules (tenant_id);

CREATE TABLE retention_runs (
    id            UUID PRIMARY KEY,
    repository_id UUID NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    tenant_id     UUID NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    state         TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    actor         TEXT NOT NULL,
    -- The rule as this run applied it.
    rule          JSONB NOT NULL,
    -- What it decided to delete (the preview's shape), then what it deleted.
    planned       JSONB NOT NULL DEFAULT '[]',
    deleted       JSONB NOT NULL DEFAULT '[]',
    -- What it kept after all (a tag released or repointed meanwhile), and why.
    skipped       JSONB NOT NULL DEFAULT '[]',
    error         TEXT,
    -- A process working on it holds it until then; a run past it resumes.
    claimed_until TIMESTAMPTZ,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
);
CREATE INDEX retention_runs_repository ON retention_runs (repository_id, id);
CREATE INDEX retention_runs_open ON retention_runs (claimed_until) WHERE state = 'running';

-- Where the images service finds a registry's configuration on its own host
-- to run `registry garbage-collect` (empty: the platform does not collect).
ALTER TABLE registries ADD COLUMN gc_config TEXT NOT NULL DEFAULT '';

CREATE TABLE gc_runs (
    id            UUID PRIMARY KEY,
    registry_id   UUID NOT NULL REFERENCES registries (id) ON DELETE CASCADE,
    trigger       TEXT NOT NULL CHECK (trigger IN ('retention', 'manual')),
    -- pending: waits for not_before; draining: writes refused, earlier push
    -- tokens running out; collecting: the collector runs.
    state         TEXT NOT NULL CHECK (state IN ('pending', 'draining', 'collecting', 'succeeded', 'failed', 'skipped')),
    not_before    TIMESTAMPTZ NOT NULL DEFAULT now(),
    writes_from   TIMESTAMPTZ,
    blobs_deleted INTEGER NOT NULL DEFAULT 0,
    freed_bytes   BIGINT NOT NULL DEFAULT 0,
    output        TEXT NOT NULL DEFAULT '',
    error         TEXT,
    claimed_until TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
);
CREATE INDEX gc_runs_registry ON gc_runs (registry_id, id);
-- One collection queued or under way per registry.
CREATE UNIQUE INDEX gc_runs_one_open ON gc_runs (registry_id)
    WHERE state IN ('pending', 'draining', 'collecting');
