-- `delivery_outbox`: the deliveries waiting for a relay's sweep (queued, not yet
-- published, held by no process), so the sweep reads that small set instead of the
-- whole open set (docs/ARCHITECTURE.md, "The outbox"). With a bulk re-invite's
-- backlog open (100,000 queued and published rows) the sweep of the open set read
-- them all every second, and PostgreSQL, expecting no unpublished row, chose to
-- read the whole `deliveries` table for it: 370 ms a sweep with 1.5 million rows of
-- history. A row joins when it is written unheld, handed back or requeued, and
-- leaves when its publish is confirmed; a row that ended or was claimed meanwhile
-- is taken out by the next sweep.
CREATE TABLE delivery_outbox (id BIGINT PRIMARY KEY);
INSERT INTO delivery_outbox (id)
SELECT d.id FROM delivery_open o JOIN deliveries d ON d.id = o.id
WHERE d.status = 'queued' AND d.published_at IS NULL AND d.claimed_by IS NULL;
ALTER TABLE delivery_outbox SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0);
