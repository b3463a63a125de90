-- Answers to POSTs sent with an Idempotency-Key (API.md, "Idempotency").
-- One row per (caller, key): `pending` while the first request runs, then
-- `done` with the answer replayed to every retry for 24 hours. `claim` names
-- the attempt that owns a pending row, so an attempt that was taken over
-- (its process died) cannot overwrite or delete its successor's row.
CREATE TABLE idempotency_keys (
    caller text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint bytea NOT NULL,
    claim uuid NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'done')),
    status smallint,
    content_type text,
    retry_after bigint,
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, idempotency_key),
    CONSTRAINT idempotency_keys_done_has_answer
        CHECK (state = 'pending' OR (status IS NOT NULL AND body IS NOT NULL))
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
