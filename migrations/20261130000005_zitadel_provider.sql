-- herald as ZITADEL's HTTP notification provider (docs/ARCHITECTURE.md, "ZITADEL's
-- notifications"): providers that ZITADEL posts to, the messages they posted, and
-- their deliveries in the same outbox as invites.

-- Where a delivery comes from. An invite delivery carries a herald user and the
-- sequence of the code it sends; a ZITADEL delivery carries neither (the user and
-- the code belong to ZITADEL), so both become nullable, and the check keeps them
-- required for every invite row (all existing rows are invites).
ALTER TABLE deliveries ADD COLUMN source TEXT NOT NULL DEFAULT 'invite'
    CHECK (source IN ('invite', 'zitadel'));
ALTER TABLE deliveries ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE deliveries ALTER COLUMN code_event_sequence DROP NOT NULL;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_invite_has_user
    CHECK (source <> 'invite' OR (user_id IS NOT NULL AND code_event_sequence IS NOT NULL));

CREATE TABLE zitadel_providers (
    -- 128 random bits, hex: the id is in the URL ZITADEL posts to, so it must not
    -- be guessable (a provider without requireSignature trusts its URL alone).
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES organizations (id),
    channel            TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    -- AES-256-GCM under crypto.key of the JSON list of signing keys, the provider id
    -- bound in as associated data (as invite codes are sealed to their user).
    signing_keys_encrypted BYTEA NOT NULL,
    require_signature  BOOLEAN NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX zitadel_providers_by_org ON zitadel_providers (org_id, id);

-- One row per accepted message. No foreign key to the provider: a message (and its
-- delivery, its replay) outlives the provider that posted it.
CREATE TABLE zitadel_messages (
    delivery_id       BIGINT PRIMARY KEY REFERENCES deliveries (id),
    provider_id       TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    -- SHA-256 of eventType | recipient | args.userID | args.code (or changeDate):
    -- ZITADEL sends no idempotency key, and the plain key would hold the code.
    dedupe_key        BYTEA NOT NULL,
    -- The posted JSON, sealed with the delivery id as associated data: it holds the
    -- code, which is never stored in plain text.
    message_encrypted BYTEA NOT NULL,
    received_at       TIMESTAMPTZ NOT NULL,
    -- When ZITADEL's code stops working (received_at + args.expiry), if it said:
    -- retries stop there, as they stop at an invite code's expiry.
    expires_at        TIMESTAMPTZ,
    UNIQUE (provider_id, dedupe_key)
);
