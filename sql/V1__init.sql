-- The whole schema of promo-engine: market, users, flash promos, notifications,
-- raffle campaigns, the email outbox and auth tokens.
-- Append-only once landed: later changes go in V2__..., V3__..., never here.

-- Exclusion constraints mixing `=` on bigint with `&&` on ranges need btree_gist
-- (a trusted extension since PostgreSQL 13).
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Market ---------------------------------------------------------------------

CREATE TABLE stores (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    latitude    double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id       bigint NOT NULL CONSTRAINT products_store_id_fkey
                       REFERENCES stores (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    regular_price  numeric(10, 2) NOT NULL CHECK (regular_price > 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_store_id_idx ON products (store_id);

-- Users ----------------------------------------------------------------------

CREATE TABLE user_segments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- Segment names are unique ignoring case.
CREATE UNIQUE INDEX user_segments_name_key ON user_segments (lower(name));

-- Admin and shoppers alike. The admin has no client profile.
CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL CHECK (char_length(username) BETWEEN 1 AND 150),
    email          text,
    password_hash  text NOT NULL,
    is_admin       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (username);

CREATE TABLE client_profiles (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id                 bigint NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    latitude                double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude               double precision CHECK (longitude BETWEEN -180 AND 180),
    last_notification_date  timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- A location is known whole or not at all.
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);

CREATE TABLE client_segments (
    client_profile_id  bigint NOT NULL REFERENCES client_profiles (id) ON DELETE CASCADE,
    segment_id         bigint NOT NULL REFERENCES user_segments (id) ON DELETE CASCADE,
    PRIMARY KEY (client_profile_id, segment_id)
);
CREATE INDEX client_segments_segment_id_idx ON client_segments (segment_id);

-- Opaque API tokens; only their SHA-256 is stored.
CREATE TABLE auth_tokens (
    token_hash    bytea PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_tokens_user_id_idx ON auth_tokens (user_id);

-- Flash promos ---------------------------------------------------------------

CREATE TABLE flash_promos (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id       bigint NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    promo_price      numeric(10, 2) NOT NULL CHECK (promo_price > 0),
    start_time       timestamptz NOT NULL,
    end_time         timestamptz NOT NULL,
    max_distance_km  double precision NOT NULL DEFAULT 2.0
                         CHECK (max_distance_km > 0 AND max_distance_km <= 100),
    is_active        boolean NOT NULL DEFAULT true,
    quantity         integer NOT NULL DEFAULT 1 CHECK (quantity >= 1),
    -- Units sold, kept by the promo's single writer; the check is the last line
    -- of defence against overselling.
    sold             integer NOT NULL DEFAULT 0
                         CONSTRAINT flash_promos_sold_within_quantity
                         CHECK (sold >= 0 AND sold <= quantity),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (end_time > start_time),
    -- Half-open windows of one product never overlap; touching ones do not.
    CONSTRAINT flash_promos_no_overlap EXCLUDE USING gist (
        product_id WITH =,
        tstzrange(start_time, end_time, '[)') WITH &&
    )
);

CREATE TABLE flash_promo_segments (
    flash_promo_id  bigint NOT NULL REFERENCES flash_promos (id) ON DELETE CASCADE,
    -- RESTRICT: a segment a promo still targets cannot be deleted (409 in_use).
    segment_id      bigint NOT NULL CONSTRAINT flash_promo_segments_segment_id_fkey
                        REFERENCES user_segments (id) ON DELETE RESTRICT,
    PRIMARY KEY (flash_promo_id, segment_id)
);
CREATE INDEX flash_promo_segments_segment_id_idx ON flash_promo_segments (segment_id);

CREATE TABLE promo_reservations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id  uuid NOT NULL UNIQUE,
    promo_id        bigint NOT NULL REFERENCES flash_promos (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'held'
                        CHECK (status IN ('held', 'completed', 'expired', 'cancelled')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    completed_at    timestamptz,
    cancelled_at    timestamptz
);
-- One live hold per user and promo.
CREATE UNIQUE INDEX promo_reservations_one_hold_per_user
    ON promo_reservations (promo_id, user_id) WHERE status = 'held';
CREATE INDEX promo_reservations_user_idx ON promo_reservations (user_id, created_at DESC);
CREATE INDEX promo_reservations_live_holds_idx
    ON promo_reservations (promo_id) WHERE status = 'held';

-- One row per flash-promo notification. The unique (user, day) pair is the
-- "at most one a day" claim: the database, not a cache, enforces it. The promo
-- reference is nulled (not deleted) with its promo so the day's claim survives.
CREATE TABLE promo_notifications (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    promo_id      bigint REFERENCES flash_promos (id) ON DELETE SET NULL,
    notify_day    date NOT NULL,
    distance_km   double precision NOT NULL,
    sent_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    CONSTRAINT promo_notifications_one_per_day UNIQUE (user_id, notify_day)
);
CREATE INDEX promo_notifications_user_idx ON promo_notifications (user_id, sent_at DESC);
CREATE INDEX promo_notifications_promo_idx ON promo_notifications (promo_id);

-- Raffle campaigns -----------------------------------------------------------

CREATE TABLE campaigns (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description           text NOT NULL DEFAULT '',
    status                text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'finished')),
    admin_email           text NOT NULL,
    email_subject         text NOT NULL,
    email_template        text NOT NULL,
    winner_subscriber_id  bigint,
    created_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    -- A finished campaign has its winner; an open one has none.
    CHECK ((status = 'finished') = (winner_subscriber_id IS NOT NULL)),
    CHECK ((status = 'finished') = (finished_at IS NOT NULL))
);

CREATE TABLE subscribers (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id             bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    email                   text NOT NULL,
    data                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    verified                boolean NOT NULL DEFAULT false,
    verification_code_hash  bytea NOT NULL UNIQUE,
    created_at              timestamptz NOT NULL DEFAULT now(),
    verified_at             timestamptz
);
-- One entry per normalised address and campaign.
CREATE UNIQUE INDEX subscribers_campaign_email_key ON subscribers (campaign_id, lower(email));
CREATE INDEX subscribers_verified_idx ON subscribers (campaign_id) WHERE verified;

ALTER TABLE campaigns ADD CONSTRAINT campaigns_winner_fkey
    FOREIGN KEY (winner_subscriber_id) REFERENCES subscribers (id);

-- Durable email outbox: rows are written in the transaction that caused them
-- and delivered by the mailer with retries.
CREATE TABLE email_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient        text NOT NULL,
    subject          text NOT NULL,
    body_text        text NOT NULL,
    body_html        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    last_error       text
);
CREATE INDEX email_outbox_pending_idx ON email_outbox (next_attempt_at) WHERE sent_at IS NULL;
