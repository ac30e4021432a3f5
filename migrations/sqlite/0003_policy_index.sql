-- Planning reads every present image; the images table is about 460 bytes a row, of which
-- the policy needs a few integers. Two generated columns and a covering index of just those
-- make the walk over a million images a read of about 30 MB instead of 460 MB, and each
-- row a handful of numbers for SQLite to hand over instead of text it must escape.

-- Whether the batch-scan call accepts the image as it is: namespace 1..=64, name 1..=128,
-- tag 1..=128, instance id <= 128, instance URL <= 256 characters (SQLite's length() counts
-- characters, like the API). Virtual: computed on read, and stored only in the index below.
ALTER TABLE images ADD COLUMN fits_batch_scan INTEGER GENERATED ALWAYS AS (
    length(namespace) BETWEEN 1 AND 64
    AND length(image_name) BETWEEN 1 AND 128
    AND length(image_version) BETWEEN 1 AND 128
    AND length(instance_id) <= 128
    AND length(instance_url) <= 256
) VIRTUAL;

-- The policy's view of an image's type, status and flags as one number, decoded by
-- `store::submissions::PolicyBits` (keep the two in step; a test checks every code):
--   image type        0 private_image, 1 shared_image, 2 instance_image, 3 other
--   + 4 × scan status 0 unscan, 1 scanning, 2 waiting_for_scan, 3 success, 4 failed,
--                     5 download_failed, 6 image_oversized, 7 other
--   + 32 × scannable, + 96 × latest_version   0 false, 1 true, 2 unknown
--   + 288 × in_flight, + 576 × fits_batch_scan   0 or 1
ALTER TABLE images ADD COLUMN policy_bits INTEGER GENERATED ALWAYS AS (
    CASE image_type
        WHEN 'private_image' THEN 0 WHEN 'shared_image' THEN 1 WHEN 'instance_image' THEN 2
        ELSE 3 END
    + 4 * CASE scan_status
        WHEN 'unscan' THEN 0 WHEN 'scanning' THEN 1 WHEN 'waiting_for_scan' THEN 2
        WHEN 'success' THEN 3 WHEN 'failed' THEN 4 WHEN 'download_failed' THEN 5
        WHEN 'image_oversized' THEN 6 ELSE 7 END
    + 32 * ifnull(scannable, 2)
    + 96 * ifnull(latest_version, 2)
    + 288 * (in_flight <> 0)
    + 576 * fits_batch_scan
) VIRTUAL;

CREATE INDEX images_policy ON images (
    target, id, policy_bits, latest_scan_time, last_submitted_at, failed_submissions
) WHERE deleted_at IS NULL;
