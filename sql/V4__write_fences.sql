-- One row per actor write batch whose outcome must be knowable afterwards.
-- The batch inserts its token (committed = true) inside its own transaction.
-- When the batch's commit goes unheard, the writer "fences" the token:
-- it inserts (token, false), or finds the row already there. While the
-- batch's transaction is still open the fence waits on the token's unique
-- key, so the answer is final: true means the batch committed; false means it
-- never will (its own insert of the token can only fail now).
CREATE TABLE write_fences (
    token       uuid PRIMARY KEY,
    committed   boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX write_fences_created_idx ON write_fences (created_at);
