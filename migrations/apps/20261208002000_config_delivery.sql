-- Configs delivered into clusters beside applications (R6). Each config an
-- application's workloads reference, as rendered for its environment: what
-- every cluster gets and what differs per cluster. Secret items are sealed
-- for federation (kernel::seal) and never stored here in the clear.
CREATE TABLE config_deliveries (
    application_id UUID        NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    tenant_id      UUID        NOT NULL,
    config         TEXT        NOT NULL,
    content        JSONB       NOT NULL,
    rendered_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (application_id, config)
);
CREATE INDEX config_deliveries_tenant ON config_deliveries (tenant_id);

-- The delivery reconciler's state per application: when it looks next
-- (a config release makes it due at once; a claim pushes it out, so a
-- process that dies mid-delivery gives the application up), what it last
-- applied (the checksums of every config), and its failures.
CREATE TABLE config_delivery_states (
    application_id UUID        PRIMARY KEY REFERENCES applications (id) ON DELETE CASCADE,
    tenant_id      UUID        NOT NULL,
    due_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered      TEXT        NOT NULL DEFAULT '',
    failures       INTEGER     NOT NULL DEFAULT 0,
    last_error     TEXT
);
CREATE INDEX config_delivery_states_due ON config_delivery_states (due_at);
CREATE INDEX config_delivery_states_tenant ON config_delivery_states (tenant_id);
