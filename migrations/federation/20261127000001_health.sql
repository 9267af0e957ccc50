-- Credentials at rest, health as the monitor sees it, and what discovery found.
ALTER TABLE clusters
    -- 12-byte nonce || ChaCha20-Poly1305 ciphertext of the credentials JSON,
    -- the cluster name as associated data; NULL: none (an open endpoint).
    ADD COLUMN credentials        BYTEA,
    ADD COLUMN condition          TEXT NOT NULL DEFAULT 'Unknown' CHECK (condition IN ('Ready', 'NotReady', 'Unknown')),
    ADD COLUMN condition_reason   TEXT NOT NULL DEFAULT 'AwaitingFirstProbe',
    ADD COLUMN condition_message  TEXT NOT NULL DEFAULT '',
    ADD COLUMN last_probe_at      TIMESTAMPTZ,
    ADD COLUMN last_transition_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN misses             INTEGER NOT NULL DEFAULT 0,   -- failed probes in a row
    ADD COLUMN kubernetes_version TEXT NOT NULL DEFAULT '',
    ADD COLUMN node_count         INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN capacity           JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN allocatable        JSONB NOT NULL DEFAULT '{}',
    ADD COLUMN discovered_at      TIMESTAMPTZ;

-- Whether a data centre has lost contact with every cluster, as last
-- announced, so the DC-level event is sent once per loss and once per return.
CREATE TABLE data_centres (
    name       TEXT PRIMARY KEY,
    lost       BOOLEAN NOT NULL DEFAULT false,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Leader leases: one holder per name until expires_at; renewed by the holder.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Drift repair: partitions converged at applied_generation are re-applied
-- when synced_at is older than the resync period.
ALTER TABLE partitions ADD COLUMN synced_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity';
