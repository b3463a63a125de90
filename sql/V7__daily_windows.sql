-- Daily windows (issue 12): a promo may run every day between two local
-- times, each run an "occurrence" with its own stock of `quantity` units.

-- refinery runs each migration in one transaction: the reservation backfill
-- below may take longer than the pool's statement timeout on a big table.
SET LOCAL statement_timeout = 0;

-- NULL: one continuous occurrence [start_time, end_time), as before.
-- Otherwise {"start": "HH:MM", "end": "HH:MM", "timezone": "<IANA>"} as the
-- service wrote it (it parses and checks it; SQL only stores it).
ALTER TABLE flash_promos ADD COLUMN daily_window jsonb
    CONSTRAINT flash_promos_daily_window_is_object
    CHECK (daily_window IS NULL OR jsonb_typeof(daily_window) = 'object');

-- `sold` now counts the sales of every occurrence. For a continuous promo
-- that is its one occurrence, so the old check still holds for it, under
-- the same name (a violation still reads as quantity_below_committed, e.g.
-- a daily promo made continuous after selling more than its quantity).
ALTER TABLE flash_promos DROP CONSTRAINT flash_promos_sold_within_quantity;
ALTER TABLE flash_promos ADD CONSTRAINT flash_promos_sold_within_quantity
    CHECK (sold >= 0 AND (daily_window IS NOT NULL OR sold <= quantity));

-- Two continuous promos of one product still may not overlap: the exclusion
-- now applies only when both rows are continuous (a partial exclusion), as
-- two daily promos with the same dates may run at different hours. A pair
-- where either has a daily window is checked occurrence by occurrence by
-- the service, in the writing transaction, under a lock on the product's
-- row (`FOR NO KEY UPDATE`) that every promo write of the product takes, so
-- two concurrent writers cannot both pass.
ALTER TABLE flash_promos DROP CONSTRAINT flash_promos_no_overlap;
ALTER TABLE flash_promos ADD CONSTRAINT flash_promos_no_overlap EXCLUDE USING gist (
    product_id WITH =,
    tstzrange(start_time, end_time, '[)') WITH &&
) WHERE (daily_window IS NULL);
-- The exclusion index no longer covers daily rows, so a product's promos
-- (the overlap check's candidates, the product-delete cascade) need their own.
CREATE INDEX flash_promos_product_idx ON flash_promos (product_id);

-- The start of the occurrence whose start was last announced (a daily
-- promo is announced once per occurrence). Compared as a key, not against
-- `notified_at`: an announcement that finished after the next occurrence
-- began must not count as that one's.
ALTER TABLE flash_promos ADD COLUMN notified_occurrence timestamptz;

-- Units sold per occurrence, keyed by the occurrence's start; a row is made
-- by the first sale of its occurrence. The check needs the quantity beside
-- `sold`, and a CHECK cannot read another table, so the row keeps a copy:
-- taken from the promo (whose row the sale statement has just locked, so
-- it is the committed quantity) when the row is made, and updated by a
-- promo write for the occurrence it counts now. A copy and not a trigger:
-- a plain CHECK cannot be bypassed or forgotten and costs nothing to run,
-- and an earlier occurrence keeps the quantity it sold under (a hold of it
-- that completes after the quantity was lowered still fits).
CREATE TABLE promo_occurrences (
    promo_id          bigint NOT NULL REFERENCES flash_promos (id) ON DELETE CASCADE,
    occurrence_start  timestamptz NOT NULL,
    quantity          integer NOT NULL CHECK (quantity >= 1),
    sold              integer NOT NULL DEFAULT 0,
    PRIMARY KEY (promo_id, occurrence_start),
    CONSTRAINT promo_occurrences_sold_within_quantity
        CHECK (sold >= 0 AND sold <= quantity)
);
INSERT INTO promo_occurrences (promo_id, occurrence_start, quantity, sold)
    SELECT id, start_time, quantity, sold FROM flash_promos WHERE sold > 0;

-- The occurrence a hold's unit was taken from (a continuous promo's is its
-- start_time). A shopper holds at most one unit per occurrence.
ALTER TABLE promo_reservations ADD COLUMN occurrence_start timestamptz;
UPDATE promo_reservations r SET occurrence_start = f.start_time
    FROM flash_promos f WHERE f.id = r.promo_id;
ALTER TABLE promo_reservations ALTER COLUMN occurrence_start SET NOT NULL;

-- A writer that does not name the occurrence (an instance of the previous
-- version during a rolling start, a hand-written row) means the promo's one
-- continuous occurrence: its start_time.
CREATE FUNCTION promo_reservations_default_occurrence() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT f.start_time INTO NEW.occurrence_start FROM flash_promos f WHERE f.id = NEW.promo_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER promo_reservations_default_occurrence
    BEFORE INSERT ON promo_reservations
    FOR EACH ROW WHEN (NEW.occurrence_start IS NULL)
    EXECUTE FUNCTION promo_reservations_default_occurrence();

DROP INDEX promo_reservations_one_hold_per_user;
CREATE UNIQUE INDEX promo_reservations_one_hold_per_user
    ON promo_reservations (promo_id, occurrence_start, user_id) WHERE status = 'held';
DROP INDEX promo_reservations_live_holds_idx;
CREATE INDEX promo_reservations_live_holds_idx
    ON promo_reservations (promo_id, occurrence_start) WHERE status = 'held';
