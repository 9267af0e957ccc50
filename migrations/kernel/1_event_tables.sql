-- Events waiting to be published. A row is written in the same transaction as
-- the state change it announces; the relay publishes it and marks it sent.
CREATE TABLE outbox (
    seq        BIGSERIAL PRIMARY KEY,
    id         UUID NOT NULL UNIQUE,
    subject    TEXT NOT NULL,          -- service.entity.verb, without the prefix
    envelope   BYTEA NOT NULL,         -- encoded paas.v1.EventEnvelope
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at    TIMESTAMPTZ
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;

-- Events a consumer has handled, so each handler runs once per event id.
CREATE TABLE inbox (
    consumer   TEXT NOT NULL,
    event_id   UUID NOT NULL,
    handled_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
