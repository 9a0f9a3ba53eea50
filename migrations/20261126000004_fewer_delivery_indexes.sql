-- Every delivery row is written four times on its way (queued, published,
-- sending, sent) and none of those updates is HOT, so each index costs four
-- insertions per delivery. `deliveries_by_status` served no query: the
-- operators' listing walks the primary key (or `deliveries_by_org`) newest
-- first, dead deliveries have their own partial index, and job counts use
-- `deliveries_by_job`.
DROP INDEX IF EXISTS deliveries_by_status;
