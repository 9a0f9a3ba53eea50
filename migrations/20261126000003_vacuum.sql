-- Deliveries, codes and users are updated several times per resend (queued →
-- published → sending → sent). At bulk rates the default autovacuum thresholds (20%
-- of the table) let dead rows pile up in the outbox's partial index and slow every
-- sweep; vacuum these tables early and without throttling.
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0,
                            autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE invite_codes SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE users SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
