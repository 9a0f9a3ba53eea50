-- Bulk re-invites and the operators' tools.

-- Which queues a delivery travels: transactional resends never wait behind bulk ones.
ALTER TABLE deliveries ADD COLUMN lane TEXT NOT NULL DEFAULT 'transactional'
    CHECK (lane IN ('transactional', 'bulk'));
-- The bulk job whose request made the delivery, if any.
ALTER TABLE deliveries ADD COLUMN job_id TEXT;
CREATE INDEX deliveries_by_job ON deliveries (job_id, status) WHERE job_id IS NOT NULL;
-- Operators list and replay dead deliveries.
CREATE INDEX deliveries_dead ON deliveries (id) WHERE status = 'dead';
CREATE INDEX deliveries_by_org ON deliveries (org_id, id);

CREATE TABLE bulk_jobs (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organizations (id),
    -- Requests published; final once published_at is set.
    total               INT NOT NULL DEFAULT 0,
    -- The creator, on whose behalf every request runs: token id, scope, permissions.
    created_by          TEXT NOT NULL,
    creator_org_id      TEXT,
    creator_permissions TEXT[] NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    published_at        TIMESTAMPTZ
);

-- One row per processed request. Progress is counted from here rather than from
-- counters on bulk_jobs: thousands of workers' updates to one job row would queue
-- on its lock. The primary key makes each request count once, even when the broker
-- delivers it twice.
CREATE TABLE bulk_results (
    job_id   TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    -- NULL: the resend succeeded; else the error id it failed with.
    error_id TEXT,
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, user_id)
);
