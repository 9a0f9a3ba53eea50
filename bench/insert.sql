-- pgbench: the cheapest durable write the database can do, the yardstick of the
-- resend API (one row, one commit). bench/run creates the table in its copy.
INSERT INTO bench_insert (v) VALUES ('resend');
