-- A promo's price stays below its product's regular price (API.md:
-- 0 < promo_price < regular_price), whichever of the two changes.
--
-- The promo side reads the product row FOR SHARE, which waits for a price
-- change in progress and makes a later one wait for the promo's transaction.
-- The product side runs after the row is updated; the query inside the
-- (volatile) trigger function takes a fresh snapshot, so it sees every promo
-- committed before the product row was locked. Together neither order of two
-- concurrent writers can leave a promo priced at or above the regular price.
-- Ended promos are history and do not hold the product's price back.

CREATE FUNCTION flash_promos_check_price() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    regular numeric(10, 2);
BEGIN
    SELECT regular_price INTO regular FROM products WHERE id = NEW.product_id FOR SHARE;
    IF regular IS NOT NULL AND NEW.promo_price >= regular THEN
        RAISE EXCEPTION 'promo price % is not below the regular price %', NEW.promo_price, regular
            USING ERRCODE = 'check_violation', CONSTRAINT = 'flash_promos_price_below_regular';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER flash_promos_price_below_regular
    BEFORE INSERT OR UPDATE OF promo_price, product_id ON flash_promos
    FOR EACH ROW EXECUTE FUNCTION flash_promos_check_price();

CREATE FUNCTION products_check_promo_prices() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM flash_promos
               WHERE product_id = NEW.id AND end_time > now()
                 AND promo_price >= NEW.regular_price) THEN
        RAISE EXCEPTION 'a flash promo of product % is priced at or above %', NEW.id, NEW.regular_price
            USING ERRCODE = 'check_violation', CONSTRAINT = 'products_regular_price_above_promos';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER products_regular_price_above_promos
    AFTER UPDATE OF regular_price ON products
    FOR EACH ROW WHEN (NEW.regular_price < OLD.regular_price)
    EXECUTE FUNCTION products_check_promo_prices();
