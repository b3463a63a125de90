-- When a promo's start was announced to its audience. Cleared when the promo is
-- switched off, so switching it on again inside its window announces it again;
-- a restart of the service does not (the promo did not start again).
ALTER TABLE flash_promos ADD COLUMN notified_at timestamptz;
