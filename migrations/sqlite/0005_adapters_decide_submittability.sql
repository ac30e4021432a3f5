-- Two changes that make the schema independent of any one HSS API.
--
-- 1. Each identifier says what it is: HSS's id of a listing record, HSS's id of the image
--    content, and (in scan_items) the row of `images` an item submitted.
ALTER TABLE images RENAME COLUMN hss_id TO hss_record_id;
ALTER TABLE images RENAME COLUMN image_id TO hss_image_id;
ALTER TABLE scan_items RENAME COLUMN image_id TO image_row_id;

-- 2. Whether a scan call can take an image is the business of the HSS adapter that listed it
--    (each API has its own limits), not of a generated column that knew only the deprecated
--    batch-scan call's field lengths. The sync now stores the adapter's verdict:
--    0 submittable, 1 a field is empty or too long (codes of `domain::Unsubmittable`).
DROP INDEX images_policy;
ALTER TABLE images DROP COLUMN policy_bits;
ALTER TABLE images DROP COLUMN fits_batch_scan;
ALTER TABLE images ADD COLUMN unsubmittable INTEGER NOT NULL DEFAULT 0;

-- Every row stored so far was listed through the deprecated API, the only one there was:
-- record once what its adapter would have said (namespace 1..=64, name 1..=128, tag 1..=128,
-- instance id <= 128, instance URL <= 256 characters). From here on the sync writes it.
UPDATE images SET unsubmittable = 1 WHERE NOT (
    length(namespace) BETWEEN 1 AND 64
    AND length(image_name) BETWEEN 1 AND 128
    AND length(image_version) BETWEEN 1 AND 128
    AND length(instance_id) <= 128
    AND length(instance_url) <= 256
);

-- The policy's fields of an image packed into one integer, as mixed-radix digits, decoded by
-- `store::sqlite::candidates::PackedPolicyFields` (keep the two in step; a test checks every
-- digit). Planning reads only this and a few times per image, from the covering index below,
-- instead of 460-byte rows.
--   image type           0 private_image, 1 shared_image, 2 instance_image, 3 harbor,
--                        4 jfrog, 7 other
--   + 8 × scan status    0 unscan, 1 scanning, 2 waiting_for_scan, 3 success, 4 failed,
--                        5 download_failed, 6 image_oversized, 7 other
--   + 64 × scannable, + 192 × latest_version   0 false, 1 true, 2 unknown
--   + 576 × in_flight    0 or 1
--   + 1152 × unsubmittable (the adapter's code, 0 = submittable)
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

CREATE INDEX images_policy ON images (
    target, id, packed_policy_fields, latest_scan_time, last_submitted_at, failed_submissions
) WHERE deleted_at IS NULL;
