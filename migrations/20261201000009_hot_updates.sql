-- Room on each page for the next version of a row (docs/ARCHITECTURE.md,
-- "Performance"). Every resend bumps its user's sequence and replaces the user's
-- code; neither touches an indexed column, so PostgreSQL can write the new version
-- as a heap-only (HOT) update, with no new index entries, but only when the page
-- has room for it. With full pages (the default fillfactor of 100) about 40% of
-- these updates were HOT in `bench/run`. Applies to pages written from now on.
ALTER TABLE users SET (fillfactor = 80);
ALTER TABLE invite_codes SET (fillfactor = 80);
