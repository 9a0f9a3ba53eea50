-- An organization's choice, per ZITADEL provider, of herald's own invite template
-- for ZITADEL's invite codes (docs/ARCHITECTURE.md, "ZITADEL's notifications").
-- Off by default: ZITADEL's translated texts stay what a message shows.
ALTER TABLE zitadel_providers ADD COLUMN use_herald_invite_template BOOLEAN NOT NULL DEFAULT FALSE;
