-- HSS's current image APIs: images of Harbor and JFrog registries, the fields the current
-- list call returns, and the scan tasks the current scan call creates.
--
-- The inventory key changes, so `images` is rebuilt: the same name and tag in two third-party
-- registries are two images, and the key is now the one the sync already identifies images
-- by in memory, `key_hash` (of type, namespace, name, tag, enterprise instance, and for
-- Harbor and JFrog images the registry), instead of six text columns. `scan_items` refers to
-- `images`, so it is copied aside and rebuilt after it, keeping its foreign key; the whole
-- file runs in one transaction with foreign keys enforced.

CREATE TABLE images_0006 (
    id                 INTEGER PRIMARY KEY,
    target             TEXT    NOT NULL,
    image_type         TEXT    NOT NULL,
    namespace          TEXT    NOT NULL,
    image_name         TEXT    NOT NULL,
    image_version      TEXT    NOT NULL,
    instance_id        TEXT    NOT NULL,
    -- xxh3-64 of the key and of every listed field: a sync keeps only these numbers (and the
    -- row id) per image in memory, and skips rows whose content hash did not change.
    key_hash           INTEGER NOT NULL,
    content_hash       INTEGER NOT NULL,
    hss_record_id      INTEGER,
    instance_name      TEXT    NOT NULL,
    instance_url       TEXT    NOT NULL,
    hss_image_id       TEXT    NOT NULL,
    image_digest       TEXT    NOT NULL,
    latest_version     INTEGER,
    scan_status        TEXT    NOT NULL,
    scan_failed_desc   TEXT    NOT NULL,
    image_size         INTEGER,
    latest_update_time INTEGER,
    latest_scan_time   INTEGER,
    vul_num            INTEGER,
    unsafe_setting_num INTEGER,
    malicious_file_num INTEGER,
    domain_name        TEXT    NOT NULL,
    shared_status      TEXT    NOT NULL,
    scannable          INTEGER,
    -- Listed by the current API only; empty or NULL for what the deprecated one listed.
    registry_id        TEXT    NOT NULL DEFAULT '',
    registry_name      TEXT    NOT NULL DEFAULT '',
    registry_type      TEXT    NOT NULL DEFAULT '',
    latest_sync_time   INTEGER,
    scan_failed_code   TEXT    NOT NULL DEFAULT '',
    severity_level     TEXT    NOT NULL DEFAULT '',
    is_multiple_arch   INTEGER,
    -- The listing adapter's verdict on whether its scan call can take the image:
    -- 0 yes; 1 a field empty or too long; 2 multi-architecture; 3 an expired share;
    -- 4 no record id, digest or registry (codes of `domain::Unsubmittable`).
    unsubmittable      INTEGER NOT NULL DEFAULT 0,
    first_seen_at      INTEGER NOT NULL,
    changed_at         INTEGER NOT NULL,
    -- Set when a complete, consistent sync no longer lists the image; cleared if it returns.
    deleted_at         INTEGER,
    -- Our bookkeeping on each image (never written by a sync): when we last submitted it,
    -- the scan_items row of that submission, whether it is in flight, and our consecutive
    -- submissions of it that ended in a failed scan.
    last_submitted_at  INTEGER,
    last_item_id       INTEGER,
    in_flight          INTEGER NOT NULL DEFAULT 0,
    failed_submissions INTEGER NOT NULL DEFAULT 0,
    UNIQUE (target, key_hash)
);

INSERT INTO images_0006 (
    id, target, image_type, namespace, image_name, image_version, instance_id, key_hash,
    content_hash, hss_record_id, instance_name, instance_url, hss_image_id, image_digest,
    latest_version, scan_status, scan_failed_desc, image_size, latest_update_time,
    latest_scan_time, vul_num, unsafe_setting_num, malicious_file_num, domain_name,
    shared_status, scannable, unsubmittable, first_seen_at, changed_at, deleted_at,
    last_submitted_at, last_item_id, in_flight, failed_submissions)
SELECT
    id, target, image_type, namespace, image_name, image_version, instance_id, key_hash,
    content_hash, hss_record_id, instance_name, instance_url, hss_image_id, image_digest,
    latest_version, scan_status, scan_failed_desc, image_size, latest_update_time,
    latest_scan_time, vul_num, unsafe_setting_num, malicious_file_num, domain_name,
    shared_status, scannable, unsubmittable, first_seen_at, changed_at, deleted_at,
    last_submitted_at, last_item_id, in_flight, failed_submissions
FROM images;

CREATE TABLE scan_items_0006 AS SELECT * FROM scan_items;
DROP TABLE scan_items;
DROP TABLE images;
ALTER TABLE images_0006 RENAME TO images;

-- See migration 0005 and `store::sqlite::candidates::PackedPolicyFields`; the unsubmittable
-- digit now has more than one reason.
ALTER TABLE images ADD COLUMN packed_policy_fields INTEGER GENERATED ALWAYS AS (
    CASE image_type
        WHEN 'private_image' THEN 0 WHEN 'shared_image' THEN 1 WHEN 'instance_image' THEN 2
        WHEN 'harbor' THEN 3 WHEN 'jfrog' THEN 4
        ELSE 7 END
    + 8 * CASE scan_status
        WHEN 'unscan' THEN 0 WHEN 'scanning' THEN 1 WHEN 'waiting_for_scan' THEN 2
        WHEN 'success' THEN 3 WHEN 'failed' THEN 4 WHEN 'download_failed' THEN 5
        WHEN 'image_oversized' THEN 6 ELSE 7 END
    + 64 * ifnull(scannable, 2)
    + 192 * ifnull(latest_version, 2)
    + 576 * (in_flight <> 0)
    + 1152 * unsubmittable
) VIRTUAL;

CREATE INDEX images_sync_index ON images (target, image_type, id, key_hash, content_hash, deleted_at);
CREATE INDEX images_present_by_status ON images (target, image_type, scan_status)
    WHERE deleted_at IS NULL;
CREATE INDEX images_policy ON images (
    target, id, packed_policy_fields, latest_scan_time, last_submitted_at, failed_submissions
) WHERE deleted_at IS NULL;

CREATE TABLE scan_items (
    id               INTEGER PRIMARY KEY,
    batch_id         INTEGER NOT NULL REFERENCES scan_batches (id),
    image_row_id     INTEGER NOT NULL REFERENCES images (id),
    reason           TEXT    NOT NULL,
    rule             INTEGER,
    priority         INTEGER NOT NULL,
    -- The image as it was when submitted: a sync that still shows exactly this, long enough
    -- after a batch whose answer never came, proves HSS never received it.
    status_before    TEXT    NOT NULL,
    scan_time_before INTEGER,
    -- images.last_submitted_at before this submission, put back if it never reached HSS.
    submitted_before INTEGER,
    -- The digest submitted (what our scan of this image said something about).
    image_digest     TEXT    NOT NULL DEFAULT '',
    -- NULL while open; success | failed (the scan's result) | lost (never received) |
    -- rejected (its batch failed) | vanished (the image was deleted) | superseded
    outcome          TEXT,
    finished_at      INTEGER,
    -- Why HSS's scan task says the image failed, when it says so.
    task_failure     TEXT
);
INSERT INTO scan_items (id, batch_id, image_row_id, reason, rule, priority, status_before,
    scan_time_before, submitted_before, outcome, finished_at)
SELECT id, batch_id, image_row_id, reason, rule, priority, status_before,
    scan_time_before, submitted_before, outcome, finished_at
FROM scan_items_0006;
DROP TABLE scan_items_0006;
CREATE INDEX scan_items_by_batch ON scan_items (batch_id);
CREATE INDEX scan_items_open_by_image ON scan_items (image_row_id) WHERE outcome IS NULL;

-- Which API a batch went through, and, on the current API, the scan task HSS made of it:
-- its id once found in the task list, and its progress as last seen (0..=100 running or
-- done, -1 stopped, -2 timed out, -3 error).
ALTER TABLE scan_batches ADD COLUMN api TEXT NOT NULL DEFAULT 'legacy';
ALTER TABLE scan_batches ADD COLUMN task_id TEXT;
ALTER TABLE scan_batches ADD COLUMN task_progress INTEGER;
ALTER TABLE scan_batches ADD COLUMN task_succeeded INTEGER;
ALTER TABLE scan_batches ADD COLUMN task_failed INTEGER;
ALTER TABLE scan_batches ADD COLUMN task_checked_at INTEGER;
-- When the task was seen to end (100, -1, -2 or -3): it is not asked about again.
ALTER TABLE scan_batches ADD COLUMN task_ended_at INTEGER;
CREATE INDEX scan_batches_open_tasks ON scan_batches (target)
    WHERE api = 'current' AND task_ended_at IS NULL;

-- What each target's HSS project said about itself at the last sync: the API in use (and
-- when `auto` fell back), HSS's own periodic scan policy, and its pay-per-scan figures, as
-- JSON, for `status` and the metrics after a restart.
CREATE TABLE target_facts (
    target         TEXT    PRIMARY KEY,
    api            TEXT    NOT NULL,
    fell_back_at   INTEGER,
    native_policy  TEXT,
    billing        TEXT,
    checked_at     INTEGER NOT NULL
);
