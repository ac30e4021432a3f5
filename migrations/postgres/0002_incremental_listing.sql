-- Incremental listing (migrations/sqlite/0010 on SQLite, which gives the reasons): every sync
-- records how it listed, so that the next one can tell whether a full listing is due and a
-- full listing can check the incremental ones since the full listing before it. Rows written
-- before this migration were all full listings.

-- full | incremental
ALTER TABLE sync_runs ADD COLUMN listing TEXT NOT NULL DEFAULT 'full';
-- Why a full listing ran, or what an incremental one read, in words.
ALTER TABLE sync_runs ADD COLUMN listing_reason TEXT;
-- An incremental listing's windows (ms): images changed from window_start to window_end.
ALTER TABLE sync_runs ADD COLUMN window_start BIGINT;
ALTER TABLE sync_runs ADD COLUMN window_end BIGINT;
-- A full listing: images it found new or changed whose change the incremental listings since
-- the previous full listing should have read and did not.
ALTER TABLE sync_runs ADD COLUMN missed BIGINT NOT NULL DEFAULT 0;
