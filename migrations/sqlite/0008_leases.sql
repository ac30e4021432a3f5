-- The leader lease (River's `river_leader`, with Kleppmann's fencing token): one row per lease,
-- today only 'leader'. `term` grows with every new holder; the transaction that records a batch
-- checks that its replica still holds the lease with its term, so a replica that lost the lease
-- while paused submits nothing when it wakes.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    term        INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The term a batch was recorded under: who submitted it, in the audit trail.
ALTER TABLE scan_batches ADD COLUMN lease_term INTEGER;
