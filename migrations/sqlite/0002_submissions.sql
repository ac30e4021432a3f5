-- Submissions: every batch-scan call and every image in it, committed as 'pending' before
-- the call and updated after it, so that a crash between the two loses nothing.

-- Our bookkeeping on each image (never written by a sync).
ALTER TABLE images ADD COLUMN last_submitted_at INTEGER;
-- The scan_items row of our latest submission of it.
ALTER TABLE images ADD COLUMN last_item_id INTEGER;
-- 1 from submission until a sync sees that submission finish, get lost, or its batch fails.
ALTER TABLE images ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
-- Our consecutive submissions of it that ended in a failed scan.
ALTER TABLE images ADD COLUMN failed_submissions INTEGER NOT NULL DEFAULT 0;

CREATE TABLE scan_batches (
    id                    INTEGER PRIMARY KEY,
    target                TEXT    NOT NULL,
    image_type            TEXT    NOT NULL,
    enterprise_project_id TEXT    NOT NULL,
    owner                 TEXT    NOT NULL,
    -- The batch this one was split from after HSS.0006 (request too large).
    parent_id             INTEGER REFERENCES scan_batches (id),
    created_at            INTEGER NOT NULL,
    answered_at           INTEGER,
    -- pending: committed, no answer yet, or an answer that does not tell (timeout, 5xx):
    --          HSS may have received it, so it is never resent blindly
    -- sent:    HSS accepted it
    -- failed:  HSS certainly did not take it (4xx, no connection): its images are due again
    status                TEXT    NOT NULL,
    items                 INTEGER NOT NULL,
    http_status           INTEGER,
    error_code            TEXT,
    request_id            TEXT,
    error                 TEXT
);

CREATE INDEX scan_batches_by_time ON scan_batches (created_at);

CREATE TABLE scan_items (
    id               INTEGER PRIMARY KEY,
    batch_id         INTEGER NOT NULL REFERENCES scan_batches (id),
    image_id         INTEGER NOT NULL REFERENCES images (id),
    reason           TEXT    NOT NULL,
    rule             INTEGER,
    priority         INTEGER NOT NULL,
    -- The image as it was when submitted: a sync that still shows exactly this, long enough
    -- after a batch whose answer never came, proves HSS never received it.
    status_before    TEXT    NOT NULL,
    scan_time_before INTEGER,
    -- images.last_submitted_at before this submission, put back if it never reached HSS.
    submitted_before INTEGER,
    -- NULL while open; success | failed (the scan's result) | lost (never received) |
    -- rejected (its batch failed) | vanished (the image was deleted) | superseded
    outcome          TEXT,
    finished_at      INTEGER
);

CREATE INDEX scan_items_by_batch ON scan_items (batch_id);
CREATE INDEX scan_items_open_by_image ON scan_items (image_id) WHERE outcome IS NULL;
