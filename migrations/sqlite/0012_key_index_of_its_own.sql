-- no-transaction
-- The inventory's key, `UNIQUE (target, key_hash)`, becomes an index of its own,
-- `images_by_key`, so that a first load can drop it and build it once at its end
-- (`store::sqlite::images`, "first load"). Keyed by a hash, it is the one index a sync
-- inserts into at random: at a million images, keeping it up row by row was nearly half of
-- the first sync's CPU, and sorting it once at the end costs about a second. A table
-- constraint cannot be dropped, so `images` is rebuilt, with the same columns, row ids and
-- other indexes.
--
-- `scan_items`, `submission_state` and `held_deletions` refer to `images`: the rebuild runs
-- with foreign keys off (SQLite's twelve-step procedure), which only works outside a
-- transaction, hence the first line; the rebuild itself is one transaction. Run twice (a
-- crash between its commit and sqlx's record of it), it rebuilds the table again. The index
-- sorts go to temporary files, not memory (the connection's `temp_store`): at a million images
-- that was 80 MB of peak.
PRAGMA foreign_keys = OFF;
PRAGMA temp_store = FILE;
BEGIN IMMEDIATE;

CREATE TABLE images_0012 (
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
    -- Migrations 0009 and 0005; decoded by `store::policy_fields::PackedPolicyFields`.
    packed_policy_fields INTEGER GENERATED ALWAYS AS (
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
        + 1152 * unsubmittable
    ) VIRTUAL,
    -- Migration 0011: the hash of the listed digest, and the packed findings.
    digest_hash        INTEGER,
    packed_risk        INTEGER GENERATED ALWAYS AS (
        CASE severity_level
            WHEN 'Security' THEN 1 WHEN 'Low' THEN 2 WHEN 'Medium' THEN 3 WHEN 'High' THEN 4
            ELSE 0 END
        + 8 * (ifnull(malicious_file_num, 0) > 0)
        + 16 * (ifnull(unsafe_setting_num, 0) > 0)
    ) VIRTUAL
);

INSERT INTO images_0012 (
    id, target, image_type, namespace, image_name, image_version, instance_id, key_hash,
    content_hash, hss_record_id, instance_name, instance_url, hss_image_id, image_digest,
    latest_version, scan_status, scan_failed_desc, image_size, latest_update_time,
    latest_scan_time, vul_num, unsafe_setting_num, malicious_file_num, domain_name,
    shared_status, scannable, registry_id, registry_name, registry_type, latest_sync_time,
    scan_failed_code, severity_level, is_multiple_arch, unsubmittable, first_seen_at,
    changed_at, deleted_at, digest_hash
)
SELECT
    id, target, image_type, namespace, image_name, image_version, instance_id, key_hash,
    content_hash, hss_record_id, instance_name, instance_url, hss_image_id, image_digest,
    latest_version, scan_status, scan_failed_desc, image_size, latest_update_time,
    latest_scan_time, vul_num, unsafe_setting_num, malicious_file_num, domain_name,
    shared_status, scannable, registry_id, registry_name, registry_type, latest_sync_time,
    scan_failed_code, severity_level, is_multiple_arch, unsubmittable, first_seen_at,
    changed_at, deleted_at, digest_hash
FROM images ORDER BY id;

DROP TABLE images;
ALTER TABLE images_0012 RENAME TO images;

CREATE UNIQUE INDEX images_by_key ON images (target, key_hash);
CREATE INDEX images_sync_index ON images (target, image_type, id, key_hash, content_hash, deleted_at);
CREATE INDEX images_policy ON images (
    target, id, packed_policy_fields, latest_scan_time, latest_update_time, digest_hash,
    packed_risk
) WHERE deleted_at IS NULL;

COMMIT;
PRAGMA temp_store = MEMORY;
PRAGMA foreign_keys = ON;
