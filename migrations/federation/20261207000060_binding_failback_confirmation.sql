-- Whether a singleton's automatic failback waits for an operator's
-- confirmation. Apps sets it from the application's environment (required
-- in production only); a binding that does not say keeps waiting, as before.
ALTER TABLE bindings ADD COLUMN failback_confirmation text NOT NULL DEFAULT 'required'
    CHECK (failback_confirmation IN ('required', 'none'));
