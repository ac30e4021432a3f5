-- Incremental listing: a sync between two full listings reads only the images whose last
-- update, sync or completed scan lies in a window. Every sync records how it listed, so that
-- the next one can tell whether a full listing is due (none for `sync.full_every`, or the
-- previous listing did not complete) and a full listing can check the incremental ones since
-- the full listing before it. Rows written before this migration were all full listings.

-- full | incremental
ALTER TABLE sync_runs ADD COLUMN listing TEXT NOT NULL DEFAULT 'full';
-- Why a full listing ran, or what an incremental one read, in words.
ALTER TABLE sync_runs ADD COLUMN listing_reason TEXT;
-- An incremental listing's windows (ms): images changed from window_start to window_end.
ALTER TABLE sync_runs ADD COLUMN window_start INTEGER;
ALTER TABLE sync_runs ADD COLUMN window_end INTEGER;
-- A full listing: images it found new or changed whose change the incremental listings since
-- the previous full listing should have read and did not.
ALTER TABLE sync_runs ADD COLUMN missed INTEGER NOT NULL DEFAULT 0;
