-- Our bookkeeping on each image moves out of `images` into a narrow table of its own.
--
-- Recording a batch used to rewrite a thousand rows of `images` (about 400 bytes each, and
-- grown by the new values, so pages split) and their entries in the policy index: a scan
-- wrote and read the disk several times per submitted image, more as the inventory grew.
-- `submission_state` rows are a few numbers, written only for images we submitted, and a
-- scan submits within one priority and reason in row order, so a batch rewrites a handful
-- of pages. A sync, in turn, no longer carries these columns it never writes.
CREATE TABLE submission_state (
    image_row_id       INTEGER PRIMARY KEY REFERENCES images (id),
    -- When we last submitted the image (ms); put back to the one before if a submission
    -- never reached HSS.
    last_submitted_at  INTEGER,
    -- The scan_items row of that submission.
    last_item_id       INTEGER,
    -- Our last submission has not been seen to finish, fail or get lost yet.
    in_flight          INTEGER NOT NULL DEFAULT 0,
    -- Our consecutive submissions of it that ended in a failed scan.
    failed_submissions INTEGER NOT NULL DEFAULT 0
);
INSERT INTO submission_state (image_row_id, last_submitted_at, last_item_id, in_flight,
    failed_submissions)
SELECT id, last_submitted_at, last_item_id, in_flight, failed_submissions FROM images
WHERE last_submitted_at IS NOT NULL OR last_item_id IS NOT NULL OR in_flight <> 0
    OR failed_submissions <> 0;

-- `status` counts images per type and scan status from the policy index's packed digits
-- instead: this index of text keys cost a quarter of a fresh sync's time.
DROP INDEX images_present_by_status;

DROP INDEX images_policy;
ALTER TABLE images DROP COLUMN packed_policy_fields;
ALTER TABLE images DROP COLUMN last_submitted_at;
ALTER TABLE images DROP COLUMN last_item_id;
ALTER TABLE images DROP COLUMN in_flight;
ALTER TABLE images DROP COLUMN failed_submissions;

-- As in migration 0006, but the 576 digit (in flight) is always 0 now: that fact lives in
-- submission_state. The digits keep their places so that one decoder reads both.
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
    + 1152 * unsubmittable
) VIRTUAL;

CREATE INDEX images_policy ON images (target, id, packed_policy_fields, latest_scan_time)
    WHERE deleted_at IS NULL;
