-- The daily-slot claim inserts one promo_notifications row per shopper told,
-- thousands per promo start; measured, the two per-row foreign-key checks and
-- the per-row UPDATE of client_profiles were two thirds of its cost.
--
-- promo_id: the claim already checks, in the same statement, that the promo
-- exists and runs, and now takes that row FOR KEY SHARE once per statement, so
-- a concurrent delete waits for the claim to commit. What ON DELETE SET NULL
-- did is done by a trigger on flash_promos, which also covers the cascades
-- from products and stores; its UPDATE runs after the delete got its row lock,
-- so it sees every claim that committed before.
ALTER TABLE promo_notifications DROP CONSTRAINT promo_notifications_promo_id_fkey;

CREATE FUNCTION promo_notifications_forget_promo() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE promo_notifications SET promo_id = NULL WHERE promo_id = OLD.id;
    RETURN OLD;
END;
$$;

CREATE TRIGGER flash_promos_forget_notifications
    AFTER DELETE ON flash_promos
    FOR EACH ROW EXECUTE FUNCTION promo_notifications_forget_promo();

-- last_notification_date is the latest sent_at of the shopper's notifications
-- (promo_notifications_user_idx answers it with one index probe); it is read
-- there instead of being copied into every profile at each claim.
ALTER TABLE client_profiles DROP COLUMN last_notification_date;
