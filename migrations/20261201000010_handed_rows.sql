-- Rows handed straight to a relay (docs/ARCHITECTURE.md, "Performance"): a resend's
-- delivery is written held by the relay of the process that committed it
-- (`claimed_by` names the process, `publishing_until` how long its hold lasts), and
-- the broker's confirm writes nothing. Such rows are not the outbox sweep's: the
-- sweeper hands them back when their process is dead or their hold ran out.
--
-- The outbox index goes: it named `status`, `published_at` and `claimed_by`, which
-- every claim and record changes. The rows a sweep is to publish are found through
-- a narrow table instead (migrations 0011, 0012).
DROP INDEX deliveries_unpublished;
