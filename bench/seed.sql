-- Seeds :users users with a sent invite in organization bench-org, directly in the
-- database (fast): what bench/run's resend and bulk benchmarks start from.
-- psql -v users=100000 -f bench/seed.sql
INSERT INTO organizations (id, name, default_language, login_methods, sequence, created_at, changed_at)
VALUES ('bench-org', 'Bench', 'en', ARRAY['password', 'passkey', 'idp'], 1, now(), now());

INSERT INTO users (id, org_id, username, given_name, family_name, display_name, email, sequence, created_at, changed_at)
SELECT 'bench-' || i, 'bench-org', 'user' || i, 'Given' || i, 'Family' || i, 'Given' || i || ' Family' || i,
       'user' || i || '@bench.example', 1, now(), now()
FROM generate_series(1, :users) AS i;

-- The previous code's ciphertext is never read by a resend (it is replaced), so any
-- bytes do; the new code is encrypted by herald.
INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name, channel, returned,
                          failed_checks, event_sequence, created_at)
SELECT 'bench-' || i, '\x00'::bytea, now() + interval '72 hours',
       'https://app.example.com/invite?userID={{UserID}}&code={{Code}}&orgID={{OrgID}}', 'Bench', 'email', false, 0, 1,
       now() - interval '2 hours'
FROM generate_series(1, :users) AS i;

INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
SELECT 'bench-' || i, 'user', 1, 'user.human.added', '{}', 'bench-org', now() - interval '2 hours', 'bench'
FROM generate_series(1, :users) AS i;

CREATE SEQUENCE IF NOT EXISTS bench_delivery_ids;
ANALYZE;
