-- Every update of a delivery a heap-only (HOT) update (docs/ARCHITECTURE.md,
-- "Performance"). A delivery row is updated two to three times on its way (claimed,
-- recorded, and marked published when swept); while `status`, `published_at` or
-- `claimed_by` appeared in an index key or a partial-index predicate, each of those
-- updates wrote a new entry in every index of the table (14 of a resend's 22 index
-- entries in bench/run). The indexes of `deliveries` now name only columns a row
-- never changes, and the sets the relay, the sweeper and the operators look for live
-- in narrow tables of their own:
--
-- `delivery_open`: the deliveries not yet in a final status (queued, sending,
-- retrying): a row joins it when its delivery is made or requeued and leaves it in
-- the statement that ends the delivery (an attempt recorded final, a new code, a
-- verification, a claim that finds it stale).
CREATE TABLE delivery_open (id BIGINT PRIMARY KEY);
INSERT INTO delivery_open (id) SELECT id FROM deliveries WHERE status IN ('queued', 'sending', 'retrying');

-- `delivery_dead`: the dead deliveries, for the operators' listing and replay;
-- exactly those whose status is `dead`.
CREATE TABLE delivery_dead (id BIGINT PRIMARY KEY);
INSERT INTO delivery_dead (id) SELECT id FROM deliveries WHERE status = 'dead';

DROP INDEX deliveries_unfinished;
DROP INDEX deliveries_dead;
DROP INDEX deliveries_by_user;
CREATE INDEX deliveries_by_user ON deliveries (user_id);
DROP INDEX deliveries_by_job;
CREATE INDEX deliveries_by_job ON deliveries (job_id) WHERE job_id IS NOT NULL;

-- Room on each page for the new versions of its rows.
ALTER TABLE deliveries SET (fillfactor = 70);
ALTER TABLE delivery_open SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
