-- Cluster mode (NATS_URL set): which instance decides each running promo and
-- each open campaign, and the fence that keeps a former owner from writing.
--
-- A lease names its owner and an epoch. The owner renews `expires_at` every
-- second; once it has passed, another instance may take the lease, which
-- raises the epoch. Every stock or entry write of an owner first calls
-- `assert_lease` with the epoch it holds: the call takes a KEY SHARE lock on
-- the lease row and fails unless the epoch is current. A takeover locks the
-- row FOR UPDATE before raising the epoch, so it waits for every write that
-- passed the check to commit or roll back, and every later write of the
-- former owner fails the check: the new owner's reload sees all of the old
-- owner's committed writes and none can follow it. Renewals update a non-key
-- column and take no lock that conflicts with KEY SHARE, so they never wait
-- for writes. With one instance (NATS_URL unset) the table stays empty and
-- nothing calls the function.

CREATE TABLE ownership_leases (
    kind text NOT NULL CHECK (kind IN ('promo', 'campaign')),
    object_id bigint NOT NULL,
    owner text NOT NULL,
    epoch bigint NOT NULL CHECK (epoch > 0),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (kind, object_id)
);

CREATE INDEX ownership_leases_owner ON ownership_leases (owner);

-- The instances that are alive: each writes `seen_at` with its renewals, so
-- the others know whom to spread new leases over.
CREATE TABLE cluster_instances (
    instance_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

-- Fails the transaction unless `lease_owner` holds the lease of
-- (`lease_kind`, `lease_object`) at `lease_epoch`. A write that passed
-- cannot be left idle long inside its transaction (a paused process would
-- keep the lease row locked against a takeover): it is cut off after 2.5 s.
CREATE FUNCTION assert_lease(lease_kind text, lease_object bigint, lease_owner text,
                             lease_epoch bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('idle_in_transaction_session_timeout', '2500', true);
    PERFORM 1 FROM ownership_leases
        WHERE kind = lease_kind AND object_id = lease_object
          AND owner = lease_owner AND epoch = lease_epoch
        FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% % is no longer leased to % at epoch %',
            lease_kind, lease_object, lease_owner, lease_epoch
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ownership_lease_current';
    END IF;
    RETURN true;
END
$$;
