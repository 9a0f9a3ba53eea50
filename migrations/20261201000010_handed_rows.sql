-- Rows handed straight to a relay (docs/ARCHITECTURE.md, "Performance"): a resend's
-- delivery is written held by the relay of the process that committed it
-- (`claimed_by` names the process, `publishing_until` how long its hold lasts), and
-- the broker's confirm writes nothing. Such rows are not the outbox sweep's: the
-- sweeper hands them back when their process is dead or their hold ran out. The
-- outbox index keeps only the rows a sweep is to publish.
DROP INDEX deliveries_unpublished;
CREATE INDEX deliveries_unpublished ON deliveries (created_at)
    WHERE published_at IS NULL AND status = 'queued' AND claimed_by IS NULL;
