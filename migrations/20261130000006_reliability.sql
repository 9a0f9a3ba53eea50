-- herald under faults (docs/ARCHITECTURE.md, "Guarantees and how they are kept").

-- One row per running herald process (and per command that mints ids): its
-- heartbeat says it is alive. The row leases the process's snowflake node number
-- (no two live processes share one) and is what a claim of a delivery points to,
-- so a claim held by a process known dead is taken over at once, not when its
-- lease runs out.
CREATE TABLE herald_processes (
    id           BIGSERIAL PRIMARY KEY,
    node         INT NOT NULL CHECK (node BETWEEN 0 AND 1023),
    host         TEXT NOT NULL,
    pid          INT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Since when the heartbeat has run without a gap: the evidence that the
    -- database was reachable, so an outage of the database itself never makes
    -- every process look dead at once.
    alive_since  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set on a clean shutdown: dead at once.
    ended_at     TIMESTAMPTZ
);
CREATE INDEX herald_processes_by_node ON herald_processes (node);

-- The relay's claim of an outbox row, committed before it publishes: another
-- relay skips the row until then, and a row whose publish was not confirmed is
-- taken again once it passes.
ALTER TABLE deliveries ADD COLUMN publishing_until TIMESTAMPTZ;
-- The process whose worker holds a `sending` row.
ALTER TABLE deliveries ADD COLUMN claimed_by BIGINT;
-- The sweeper's rows: those that may need handing back to the outbox.
CREATE INDEX deliveries_unfinished ON deliveries (id) WHERE status IN ('queued', 'sending', 'retrying');
