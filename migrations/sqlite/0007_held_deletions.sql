-- Deletions a complete listing held back because they were more than sync.max_delete_share of
-- the present images: the next complete listing deletes those it confirms (they vanished
-- again) and holds the rest anew. Replaced whole by every complete listing of the target and
-- type.
CREATE TABLE held_deletions (
    target     TEXT    NOT NULL,
    image_type TEXT    NOT NULL,
    image_row_id INTEGER NOT NULL REFERENCES images (id),
    PRIMARY KEY (target, image_type, image_row_id)
) WITHOUT ROWID;

-- How many deletions a sync held back.
ALTER TABLE sync_runs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
