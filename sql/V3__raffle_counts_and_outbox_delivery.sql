-- Live counts of a campaign, kept in the transactions that add or verify a
-- subscriber (both hold the campaign row's lock), so listing campaigns never
-- counts subscribers.
ALTER TABLE campaigns
    ADD COLUMN subscriber_count bigint NOT NULL DEFAULT 0 CHECK (subscriber_count >= 0),
    ADD COLUMN verified_count   bigint NOT NULL DEFAULT 0 CHECK (verified_count >= 0);
UPDATE campaigns c SET
    subscriber_count = (SELECT count(*) FROM subscribers s WHERE s.campaign_id = c.id),
    verified_count = (SELECT count(*) FROM subscribers s WHERE s.campaign_id = c.id AND s.verified);

-- Subscribers are listed, and verified ones drawn, in id order per campaign.
DROP INDEX subscribers_verified_idx;
CREATE INDEX subscribers_campaign_order_idx ON subscribers (campaign_id, id);
CREATE INDEX subscribers_verified_order_idx ON subscribers (campaign_id, id) WHERE verified;

-- A message the mail server refused for good (a 5xx answer) is not retried.
ALTER TABLE email_outbox ADD COLUMN abandoned_at timestamptz;
DROP INDEX email_outbox_pending_idx;
CREATE INDEX email_outbox_pending_idx ON email_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND abandoned_at IS NULL;
