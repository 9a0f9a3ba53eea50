-- pgbench: the statements of one resend, as herald runs them (store/), in one
-- transaction. Run against a copy of the seeded database.
\set n random(1, :users)
BEGIN;
SELECT u.*, o.default_language AS org_default_language FROM users u JOIN organizations o ON o.id = u.org_id
 WHERE u.id = 'bench-' || :n FOR UPDATE OF u;
SELECT * FROM invite_codes WHERE user_id = 'bench-' || :n;
SELECT count(*), min(created_at) FROM events
 WHERE aggregate_id = 'bench-' || :n AND type = 'invite.code.added' AND created_at > now() - interval '1 hour';
WITH bumped AS (UPDATE users SET sequence = sequence + 1, changed_at = now() WHERE id = 'bench-' || :n RETURNING sequence)
INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
SELECT 'bench-' || :n, 'user', bumped.sequence, 'invite.code.added',
       '{"channel":"email","returned":false,"applicationName":"Bench"}', 'bench-org', now(), 'bootstrap' FROM bumped
RETURNING sequence;
INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name, channel, returned,
                          failed_checks, event_sequence, created_at)
VALUES ('bench-' || :n, '\x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c'::bytea, now() + interval '72 hours',
        'https://app.example.com/invite?userID={{UserID}}&code={{Code}}', 'Bench', 'email', false, 0, 2, now())
ON CONFLICT (user_id) DO UPDATE SET code_encrypted = EXCLUDED.code_encrypted, expires_at = EXCLUDED.expires_at,
    url_template = EXCLUDED.url_template, application_name = EXCLUDED.application_name, channel = EXCLUDED.channel,
    returned = EXCLUDED.returned, failed_checks = EXCLUDED.failed_checks, event_sequence = EXCLUDED.event_sequence,
    created_at = EXCLUDED.created_at;
UPDATE deliveries SET status = 'superseded', updated_at = now(), lease_until = NULL
 WHERE user_id = 'bench-' || :n AND status IN ('queued', 'retrying');
INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status, code_event_sequence,
                        created_at, updated_at, request_id, lane, job_id)
VALUES (nextval('bench_delivery_ids'), 'bench-' || :n, 'bench-org', 'email', 'user' || :n || '@bench.example',
        'invite_user', 'en', 'queued', 2, now(), now(), 'bench', 'transactional', NULL);
END;
