-- herald at its edge (docs/ARCHITECTURE.md, "Guarantees and how they are kept").

-- A user and an organization are two aggregates even when a caller chose a user id
-- equal to an organization's: their events must not collide on (id, sequence).
-- aggregate_id stays first, so the lookups by aggregate keep their index.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (aggregate_id, aggregate_type, sequence);

-- The limit per recipient (across users) counts the last hour's deliveries to an
-- address (docs/API.md §2.1): a handful of rows per address.
CREATE INDEX deliveries_by_recipient ON deliveries (recipient, created_at);

-- The limit per organization counts its transactional codes by the minute: one
-- organization may send tens of thousands an hour, and counting its deliveries for
-- every transaction would cost as many index entries. Added to after each commit.
CREATE TABLE org_send_counts (
    org_id TEXT NOT NULL,
    minute TIMESTAMPTZ NOT NULL,
    sent   INT NOT NULL,
    PRIMARY KEY (org_id, minute)
);

-- A token made by another token: revoking the maker revokes it (docs/API.md §3).
CREATE INDEX api_tokens_by_creator ON api_tokens (created_by);
