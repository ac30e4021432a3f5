-- The inventory: every image HSS lists, per target (account/region/project) and image type.
-- Wire fields keep their wire names. Times are milliseconds since the Unix epoch, UTC.

CREATE TABLE images (
    id                 INTEGER PRIMARY KEY,
    target             TEXT    NOT NULL,
    image_type         TEXT    NOT NULL,
    namespace          TEXT    NOT NULL,
    image_name         TEXT    NOT NULL,
    image_version      TEXT    NOT NULL,
    instance_id        TEXT    NOT NULL,
    -- xxh3-64 of the key and of every wire field: a sync keeps only these numbers (and the
    -- row id) per image in memory, and skips rows whose content hash did not change.
    key_hash           INTEGER NOT NULL,
    content_hash       INTEGER NOT NULL,
    hss_id             INTEGER,
    instance_name      TEXT    NOT NULL,
    instance_url       TEXT    NOT NULL,
    image_id           TEXT    NOT NULL,
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
    first_seen_at      INTEGER NOT NULL,
    changed_at         INTEGER NOT NULL,
    -- Set when a complete, consistent sync no longer lists the image; cleared if it returns.
    deleted_at         INTEGER,
    UNIQUE (target, image_type, namespace, image_name, image_version, instance_id)
);

-- Covers a sync's read of what it knows (row id and hashes per image, in id order): new rows
-- only ever append to it, so it costs inserts little.
CREATE INDEX images_sync_index ON images (target, image_type, id, key_hash, content_hash, deleted_at);
CREATE INDEX images_present_by_status ON images (target, image_type, scan_status)
    WHERE deleted_at IS NULL;

-- One row per sync of one target and image type.
CREATE TABLE sync_runs (
    id                INTEGER PRIMARY KEY,
    target            TEXT    NOT NULL,
    image_type        TEXT    NOT NULL,
    -- The process that runs it ("pid:start-time"), to tell a live run from a crashed one.
    owner             TEXT    NOT NULL,
    started_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    -- running | complete (every page, consistent total) | partial (some pages, deletes
    -- nothing) | failed (nothing listed) | interrupted (the process died while it ran)
    outcome           TEXT    NOT NULL DEFAULT 'running',
    pages             INTEGER NOT NULL DEFAULT 0,
    total_num         INTEGER,
    seen              INTEGER NOT NULL DEFAULT 0,
    new               INTEGER NOT NULL DEFAULT 0,
    changed           INTEGER NOT NULL DEFAULT 0,
    restored          INTEGER NOT NULL DEFAULT 0,
    deleted           INTEGER NOT NULL DEFAULT 0,
    unreadable_fields INTEGER NOT NULL DEFAULT 0,
    error             TEXT
);

CREATE INDEX sync_runs_latest ON sync_runs (target, image_type, id);
