-- Raffle campaign lifecycle (draft / open / finished / cancelled, opening and
-- closing times), several winners per draw, and the verifiable draw.

-- Lifecycle -------------------------------------------------------------------
ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'open', 'finished', 'cancelled'));
ALTER TABLE campaigns
    -- A draft opens by itself at opens_at; once open, opens_at is when it opened.
    ADD COLUMN opens_at       timestamptz,
    -- An open campaign takes no entries from closes_at on (the draw still
    -- needs finish_campaign/).
    ADD COLUMN closes_at      timestamptz,
    ADD COLUMN winners_count  integer NOT NULL DEFAULT 1
        CHECK (winners_count BETWEEN 1 AND 1000),
    -- The draw's secret: 32 bytes from the OS's CSPRNG, drawn at opening and
    -- published only after the finish; its SHA-256 is shown from opening on.
    ADD COLUMN draw_seed        bytea CHECK (octet_length(draw_seed) = 32),
    ADD COLUMN seed_commitment  bytea CHECK (octet_length(seed_commitment) = 32),
    -- What the draw used, fixed at the finish: SHA-256 of the entries file and
    -- how many entries it lists.
    ADD COLUMN entries_digest  bytea CHECK (octet_length(entries_digest) = 32),
    ADD COLUMN entry_count     bigint CHECK (entry_count > 0),
    ADD CONSTRAINT campaigns_seed_pair_check
        CHECK ((draw_seed IS NULL) = (seed_commitment IS NULL)),
    -- The published commitment is the seed's, whatever writes the row.
    ADD CONSTRAINT campaigns_commitment_of_seed_check
        CHECK (seed_commitment = sha256(draw_seed)),
    ADD CONSTRAINT campaigns_draft_unseeded_check
        CHECK (status <> 'draft' OR draw_seed IS NULL),
    ADD CONSTRAINT campaigns_draw_record_check
        CHECK ((entries_digest IS NULL) = (entry_count IS NULL)
               AND (entries_digest IS NULL OR status = 'finished'));
UPDATE campaigns SET opens_at = created_at;

-- Several winners -------------------------------------------------------------
-- The winners in draw order; `entry_index` is the winner's position in the
-- draw's entries list (NULL only for draws made before this migration, which
-- published no entries).
CREATE TABLE campaign_winners (
    campaign_id    bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    position       integer NOT NULL CHECK (position >= 0),
    -- No cascade: a winner's row is never removed by deleting a subscriber
    -- (deleting the campaign removes both together).
    subscriber_id  bigint NOT NULL REFERENCES subscribers (id),
    entry_index    bigint CHECK (entry_index >= 0),
    PRIMARY KEY (campaign_id, position),
    UNIQUE (campaign_id, subscriber_id)
);
INSERT INTO campaign_winners (campaign_id, position, subscriber_id)
    SELECT id, 0, winner_subscriber_id FROM campaigns
    WHERE winner_subscriber_id IS NOT NULL;
-- The winners now live in campaign_winners; this drops the V1 check tying
-- `finished` to winner_subscriber_id and its foreign key with it.
ALTER TABLE campaigns DROP CONSTRAINT campaigns_check;
ALTER TABLE campaigns DROP COLUMN winner_subscriber_id;

-- Entries ---------------------------------------------------------------------
-- Each subscriber's published entry: SHA-256 of the UTF-8 bytes of the
-- normalised address (stored addresses are normalised), computed when the row
-- is written so the draw only reads it. A trigger rather than a generated
-- column: convert_to is not immutable.
ALTER TABLE subscribers ADD COLUMN entry_hash bytea;
UPDATE subscribers SET entry_hash = sha256(convert_to(email, 'UTF8'));
ALTER TABLE subscribers ALTER COLUMN entry_hash SET NOT NULL;
CREATE FUNCTION subscribers_set_entry_hash() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.entry_hash := sha256(convert_to(NEW.email, 'UTF8'));
    RETURN NEW;
END;
$$;
CREATE TRIGGER subscribers_entry_hash BEFORE INSERT OR UPDATE OF email ON subscribers
    FOR EACH ROW EXECUTE FUNCTION subscribers_set_entry_hash();

-- An address confirmed after its campaign stopped being open (finished or
-- cancelled) counts as verified but was never a candidate: the draw's entries
-- stay exactly what the draw used.
ALTER TABLE subscribers ADD COLUMN missed_draw boolean NOT NULL DEFAULT false;

-- The draw reads the candidates' ids and entries in id order from the index alone.
DROP INDEX subscribers_verified_order_idx;
CREATE INDEX subscribers_draw_idx ON subscribers (campaign_id, id) INCLUDE (entry_hash)
    WHERE verified AND NOT missed_draw;

-- Campaign emails ---------------------------------------------------------------
-- The campaign an email was queued for (NULL for others, and when the
-- campaign is deleted): a cancel gives up on its unsent emails, so no
-- confirmation reaches an entrant after it, and a requeue skips them.
ALTER TABLE email_outbox ADD COLUMN campaign_id bigint REFERENCES campaigns ON DELETE SET NULL;
CREATE INDEX email_outbox_campaign_unsent_idx ON email_outbox (campaign_id) WHERE sent_at IS NULL;
