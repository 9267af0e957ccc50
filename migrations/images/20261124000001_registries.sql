CREATE TABLE registries (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    url        TEXT NOT NULL,
    master     BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One master registry at most: the others replicate from it.
CREATE UNIQUE INDEX registries_one_master ON registries (master) WHERE master;
