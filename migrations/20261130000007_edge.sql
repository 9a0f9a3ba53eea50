-- herald at its edge (docs/ARCHITECTURE.md, "Guarantees and how they are kept").

-- A user and an organization are two aggregates even when a caller chose a user id
-- equal to an organization's: their events must not collide on (id, sequence).
-- aggregate_id stays first, so the lookups by aggregate keep their index.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (aggregate_id, aggregate_type, sequence);

-- The limits per recipient (across users) and per organization (transactional
-- deliveries) count the last hour's deliveries (docs/API.md §2.1).
CREATE INDEX deliveries_by_recipient ON deliveries (recipient, created_at);
CREATE INDEX deliveries_transactional_by_org ON deliveries (org_id, created_at) WHERE lane = 'transactional';

-- A token made by another token: revoking the maker revokes it (docs/API.md §3).
CREATE INDEX api_tokens_by_creator ON api_tokens (created_by);
