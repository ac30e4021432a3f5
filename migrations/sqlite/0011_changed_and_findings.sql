-- A re-pushed tag (the due reason `changed`) and the findings HSS already lists (the metrics
-- `hss_scand_images_at_risk` and friends), in the narrow policy index that a plan and a
-- metrics refresh read instead of the wide rows of `images`.

-- A 64-bit hash of `image_digest`, written by the sync (`store::model::digest_hash`): the
-- first 16 hex digits of a `sha256:` digest, as a signed integer, or xxh3-64 of any other
-- digest text; NULL when HSS lists no digest. A plan compares it with the hash of the digest
-- we last submitted, so the index holds 8 bytes per image rather than a 71-character text.
ALTER TABLE images ADD COLUMN digest_hash INTEGER;

-- Rows stored so far: the hash of a `sha256:` digest is computable here, and is exactly what
-- the sync would write. Other digests (rare; HSS lists sha256) stay NULL, "unknown", which
-- never counts as changed, until the sync rewrites their row. Each `|` term is parenthesised
-- because SQLite gives `<<` and `|` the same precedence.
UPDATE images SET digest_hash = (
        ((instr('0123456789abcdef', substr(image_digest, 8, 1)) - 1) << 60) | ((instr('0123456789abcdef', substr(image_digest, 9, 1)) - 1) << 56) |
        ((instr('0123456789abcdef', substr(image_digest, 10, 1)) - 1) << 52) | ((instr('0123456789abcdef', substr(image_digest, 11, 1)) - 1) << 48) |
        ((instr('0123456789abcdef', substr(image_digest, 12, 1)) - 1) << 44) | ((instr('0123456789abcdef', substr(image_digest, 13, 1)) - 1) << 40) |
        ((instr('0123456789abcdef', substr(image_digest, 14, 1)) - 1) << 36) | ((instr('0123456789abcdef', substr(image_digest, 15, 1)) - 1) << 32) |
        ((instr('0123456789abcdef', substr(image_digest, 16, 1)) - 1) << 28) | ((instr('0123456789abcdef', substr(image_digest, 17, 1)) - 1) << 24) |
        ((instr('0123456789abcdef', substr(image_digest, 18, 1)) - 1) << 20) | ((instr('0123456789abcdef', substr(image_digest, 19, 1)) - 1) << 16) |
        ((instr('0123456789abcdef', substr(image_digest, 20, 1)) - 1) << 12) | ((instr('0123456789abcdef', substr(image_digest, 21, 1)) - 1) << 8) |
        ((instr('0123456789abcdef', substr(image_digest, 22, 1)) - 1) << 4) | ((instr('0123456789abcdef', substr(image_digest, 23, 1)) - 1) << 0)
) WHERE substr(image_digest, 1, 7) = 'sha256:' AND length(image_digest) = 71
    AND substr(image_digest, 8) NOT GLOB '*[^0-9a-f]*';

-- The findings of an image's last scan, as listed, packed into one small number for the
-- index: the severity digit (0 none or unknown, 1 Security, 2 Low, 3 Medium, 4 High)
-- + 8 if it has malicious files + 16 if it has unsafe settings. Decoded by
-- `store::sqlite::images::RiskDigits`.
ALTER TABLE images ADD COLUMN packed_risk INTEGER GENERATED ALWAYS AS (
    CASE severity_level
        WHEN 'Security' THEN 1 WHEN 'Low' THEN 2 WHEN 'Medium' THEN 3 WHEN 'High' THEN 4
        ELSE 0 END
    + 8 * (ifnull(malicious_file_num, 0) > 0)
    + 16 * (ifnull(unsafe_setting_num, 0) > 0)
) VIRTUAL;

-- The policy index gains the latest push time and the digest hash (`changed`) and the packed
-- findings (counted with GROUP BY on the index alone).
DROP INDEX images_policy;
CREATE INDEX images_policy ON images (
    target, id, packed_policy_fields, latest_scan_time, latest_update_time, digest_hash,
    packed_risk
) WHERE deleted_at IS NULL;

-- The hash of the digest of our last submission of each image, beside its time; put back,
-- like the time, when a submission never reached HSS.
ALTER TABLE submission_state ADD COLUMN submitted_digest_hash INTEGER;
-- The hash of what each item submitted, and the image's submitted_digest_hash before it
-- (what a rejected or lost submission gives back).
ALTER TABLE scan_items ADD COLUMN digest_hash INTEGER;
ALTER TABLE scan_items ADD COLUMN digest_hash_before INTEGER;

-- Our submissions so far: the digest of each image's latest item that counted (not rejected
-- with its batch, not lost on the way), hashed as above.
UPDATE submission_state SET submitted_digest_hash = (
    SELECT
        ((instr('0123456789abcdef', substr(i.image_digest, 8, 1)) - 1) << 60) | ((instr('0123456789abcdef', substr(i.image_digest, 9, 1)) - 1) << 56) |
        ((instr('0123456789abcdef', substr(i.image_digest, 10, 1)) - 1) << 52) | ((instr('0123456789abcdef', substr(i.image_digest, 11, 1)) - 1) << 48) |
        ((instr('0123456789abcdef', substr(i.image_digest, 12, 1)) - 1) << 44) | ((instr('0123456789abcdef', substr(i.image_digest, 13, 1)) - 1) << 40) |
        ((instr('0123456789abcdef', substr(i.image_digest, 14, 1)) - 1) << 36) | ((instr('0123456789abcdef', substr(i.image_digest, 15, 1)) - 1) << 32) |
        ((instr('0123456789abcdef', substr(i.image_digest, 16, 1)) - 1) << 28) | ((instr('0123456789abcdef', substr(i.image_digest, 17, 1)) - 1) << 24) |
        ((instr('0123456789abcdef', substr(i.image_digest, 18, 1)) - 1) << 20) | ((instr('0123456789abcdef', substr(i.image_digest, 19, 1)) - 1) << 16) |
        ((instr('0123456789abcdef', substr(i.image_digest, 20, 1)) - 1) << 12) | ((instr('0123456789abcdef', substr(i.image_digest, 21, 1)) - 1) << 8) |
        ((instr('0123456789abcdef', substr(i.image_digest, 22, 1)) - 1) << 4) | ((instr('0123456789abcdef', substr(i.image_digest, 23, 1)) - 1) << 0)
    FROM scan_items i
    WHERE i.image_row_id = submission_state.image_row_id
        AND (i.outcome IS NULL OR i.outcome NOT IN ('rejected', 'lost'))
        AND substr(i.image_digest, 1, 7) = 'sha256:' AND length(i.image_digest) = 71
    AND substr(i.image_digest, 8) NOT GLOB '*[^0-9a-f]*'
    ORDER BY i.id DESC LIMIT 1
);
