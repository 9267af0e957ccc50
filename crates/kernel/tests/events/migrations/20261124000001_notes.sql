CREATE TABLE notes (id UUID PRIMARY KEY, text TEXT NOT NULL);
-- What the test consumer handled; a duplicate delivery would add a second row.
CREATE TABLE handled (note_id UUID NOT NULL, text TEXT NOT NULL, handled_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
