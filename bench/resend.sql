-- pgbench: the statements of one resend, as herald runs them (store/users.rs
-- lock_many, store/invites.rs issue_states, recent_by_recipient, recent_by_org and
-- write_issues), in one transaction,
-- with one user per statement as the HTTP endpoint sends them. Run against a copy
-- of the seeded database. (The bootstrap token herald's load uses is checked in
-- memory: no statement.)
\set n random(1, :users)
BEGIN;
SELECT u.*, o.default_language AS org_default_language FROM users u JOIN organizations o ON o.id = u.org_id
 WHERE u.id = ANY(ARRAY['bench-' || :n]) ORDER BY u.id FOR UPDATE OF u;
SELECT k.user_id AS for_user, rc.recent_codes, rc.oldest_recent,
       (k.job_id IS NOT NULL AND EXISTS (SELECT 1 FROM bulk_results r WHERE r.job_id = k.job_id AND r.user_id = k.user_id))
           AS job_done,
       c.user_id, c.code_encrypted, c.expires_at, c.url_template, c.application_name, c.channel, c.returned,
       c.failed_checks, c.event_sequence, c.created_at
FROM unnest(ARRAY['bench-' || :n], ARRAY[NULL::text]) AS k(user_id, job_id)
CROSS JOIN LATERAL (
    SELECT count(*) AS recent_codes, min(e.created_at) AS oldest_recent FROM events e
    WHERE e.aggregate_id = k.user_id AND e.type = 'invite.code.added' AND e.created_at > now() - interval '1 hour'
) rc
LEFT JOIN invite_codes c ON c.user_id = k.user_id;
SELECT k.key, w.n, w.oldest FROM unnest(ARRAY['user' || :n || '@bench.example']) AS k(key)
CROSS JOIN LATERAL (
    SELECT count(*) AS n, min(created_at) AS oldest FROM (
        SELECT d.created_at FROM deliveries d WHERE d.recipient = k.key AND d.created_at > now() - interval '1 hour'
        ORDER BY d.created_at LIMIT 1000000) x
) w;
SELECT k.key, coalesce(sum(c.sent), 0)::bigint, min(c.minute) FROM unnest(ARRAY['bench-org']) AS k(key)
LEFT JOIN org_send_counts c ON c.org_id = k.key AND c.minute >= date_trunc('minute', now() - interval '1 hour')
GROUP BY k.key;
WITH w AS (
    SELECT * FROM unnest(ARRAY['bench-' || :n], ARRAY['bench-org'], ARRAY[now()], ARRAY['bootstrap'],
                         ARRAY['{"channel": "email", "returned": false, "applicationName": "Bench"}'::jsonb],
                         ARRAY['\x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c'::bytea],
                         ARRAY[now() + interval '72 hours'],
                         ARRAY['https://app.example.com/invite?userID={{UserID}}&code={{Code}}'], ARRAY['Bench'],
                         ARRAY['email'], ARRAY[false], ARRAY[nextval('bench_delivery_ids')],
                         ARRAY['user' || :n || '@bench.example'], ARRAY['invite_user'], ARRAY['en'], ARRAY['bench'],
                         ARRAY['transactional'], ARRAY[NULL::text])
        AS w(user_id, org_id, at, created_by, payload, code_encrypted, expires_at, url_template,
             application_name, channel, returned, delivery_id, recipient, template, locale, request_id, lane, job_id)
), bumped AS (
    UPDATE users u SET sequence = u.sequence + 1, changed_at = w.at FROM w WHERE u.id = w.user_id
    RETURNING u.id, u.sequence
), event AS (
    INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at, created_by)
    SELECT w.user_id, 'user', b.sequence, 'invite.code.added', w.payload, w.org_id, w.at, w.created_by
    FROM w JOIN bumped b ON b.id = w.user_id
    RETURNING aggregate_id, sequence
), code AS (
    INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name,
                              channel, returned, failed_checks, event_sequence, created_at)
    SELECT w.user_id, w.code_encrypted, w.expires_at, w.url_template, w.application_name, w.channel,
           w.returned, 0, e.sequence, w.at
    FROM w JOIN event e ON e.aggregate_id = w.user_id
    ON CONFLICT (user_id) DO UPDATE SET
        code_encrypted = EXCLUDED.code_encrypted, expires_at = EXCLUDED.expires_at,
        url_template = EXCLUDED.url_template, application_name = EXCLUDED.application_name,
        channel = EXCLUDED.channel, returned = EXCLUDED.returned, failed_checks = 0,
        event_sequence = EXCLUDED.event_sequence, created_at = EXCLUDED.created_at
    RETURNING user_id, event_sequence
), superseded AS (
    UPDATE deliveries x SET status = 'superseded', updated_at = w.at, lease_until = NULL
    FROM w
    WHERE x.user_id = w.user_id AND x.id IN (
        SELECT id FROM deliveries
        WHERE user_id IN (SELECT user_id FROM w) AND status IN ('queued', 'retrying')
        ORDER BY id FOR UPDATE)
), delivery AS (
    INSERT INTO deliveries (id, user_id, org_id, channel, recipient, template, locale, status,
                            code_event_sequence, created_at, updated_at, request_id, lane, job_id, publishing_until)
    SELECT w.delivery_id, w.user_id, w.org_id, w.channel, w.recipient, w.template, w.locale, 'queued',
           c.event_sequence, w.at, w.at, w.request_id, w.lane, w.job_id, now() + interval '30 seconds'
    FROM w JOIN code c ON c.user_id = w.user_id WHERE w.delivery_id IS NOT NULL
), result AS (
    INSERT INTO bulk_results (job_id, user_id, error_id, at)
    SELECT w.job_id, w.user_id, NULL, w.at FROM w JOIN code c ON c.user_id = w.user_id
    WHERE w.job_id IS NOT NULL
    ON CONFLICT (job_id, user_id) DO NOTHING
)
SELECT aggregate_id, sequence FROM event;
END;
