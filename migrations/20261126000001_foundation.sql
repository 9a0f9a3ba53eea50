-- herald's foundation: organizations, users, invite codes, events, the delivery
-- outbox and API tokens. IDs are snowflake decimal strings (users and organizations
-- may also carry caller-chosen IDs, as in ZITADEL), deliveries use BIGINT snowflakes.

-- Hands each herald process a node number for its ID generator.
CREATE SEQUENCE herald_node_ids;

CREATE TABLE organizations (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    default_language TEXT NOT NULL DEFAULT 'en',
    login_methods    TEXT[] NOT NULL,
    sequence         BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    changed_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES organizations (id),
    username           TEXT NOT NULL,
    given_name         TEXT NOT NULL,
    family_name        TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    preferred_language TEXT,
    email              TEXT,
    email_verified     BOOLEAN NOT NULL DEFAULT FALSE,
    phone              TEXT,
    phone_verified     BOOLEAN NOT NULL DEFAULT FALSE,
    initialized        BOOLEAN NOT NULL DEFAULT FALSE,
    -- 'active' or 'deleted'; a deleted user is invisible to every endpoint.
    state              TEXT NOT NULL DEFAULT 'active',
    -- The sequence of the user's last event (API.md §1.1).
    sequence           BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    changed_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, username)
);

-- One current code per user. The row outlives its code: a cleared code (3 failed
-- checks, an expired check, a verified invite) has code_encrypted NULL, and Resend
-- still inherits the template, application name and channel from the row.
CREATE TABLE invite_codes (
    user_id          TEXT PRIMARY KEY REFERENCES users (id),
    code_encrypted   BYTEA,
    expires_at       TIMESTAMPTZ NOT NULL,
    url_template     TEXT NOT NULL,
    application_name TEXT NOT NULL,
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    returned         BOOLEAN NOT NULL,
    failed_checks    INT NOT NULL DEFAULT 0,
    -- The sequence of the invite.code.added event that made this code; a delivery
    -- whose code_event_sequence differs carries a superseded code.
    event_sequence   BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE events (
    aggregate_id   TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    sequence       BIGINT NOT NULL,
    type           TEXT NOT NULL,
    payload        JSONB NOT NULL DEFAULT '{}',
    resource_owner TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    -- The token id that caused the event ('bootstrap' for the configured token).
    created_by     TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, sequence)
);
-- The per-user rate limit counts recent invite.code.added events.
CREATE INDEX events_by_type_and_time ON events (aggregate_id, type, created_at);

-- The transactional outbox: a row per message to one recipient over one channel.
CREATE TABLE deliveries (
    id                  BIGINT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users (id),
    org_id              TEXT NOT NULL REFERENCES organizations (id),
    channel             TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient           TEXT NOT NULL,
    template            TEXT NOT NULL,
    locale              TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN
                          ('queued', 'sending', 'sent', 'retrying', 'dead',
                           'superseded', 'expired', 'cancelled')),
    attempts            INT NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ,
    lease_until         TIMESTAMPTZ,
    last_error          TEXT,
    code_event_sequence BIGINT NOT NULL,
    published_at        TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    sent_at             TIMESTAMPTZ,
    provider_message_id TEXT,
    request_id          TEXT
);
CREATE INDEX deliveries_unpublished ON deliveries (created_at) WHERE published_at IS NULL AND status = 'queued';
CREATE INDEX deliveries_by_user ON deliveries (user_id, status);
CREATE INDEX deliveries_by_status ON deliveries (status, id);

CREATE TABLE delivery_attempts (
    id          BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
    attempt     INT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent')),
    error       TEXT,
    duration_ms INT NOT NULL
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_hash  BYTEA NOT NULL UNIQUE,
    org_id      TEXT REFERENCES organizations (id),
    permissions TEXT[] NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
