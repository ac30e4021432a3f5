//! The limits the simulated service enforces, as HSS documents them. They are the server's
//! numbers, kept apart from whatever the daemon believes, so a daemon that drifts from them is
//! caught by the simulator instead of agreeing with itself.

/// `BatchScanSwrImageInfo.namespace` (deprecated batch-scan).
pub const NAMESPACE: usize = 64;
/// `BatchScanSwrImageInfo.image_name`.
pub const IMAGE_NAME: usize = 128;
/// `BatchScanSwrImageInfo.image_version`.
pub const IMAGE_VERSION: usize = 128;
pub const INSTANCE_ID: usize = 128;
pub const INSTANCE_URL: usize = 256;
/// Items in one batch-scan `image_info_list` (`Array Length: 0 - 10241`).
pub const BATCH_ITEMS: usize = 10241;
/// Largest `limit` of both image list calls.
pub const PAGE_SIZE: i64 = 200;
/// Largest `offset` of every paged call.
pub const MAX_OFFSET: i64 = 2_000_000;
/// `list_image_scan_task`: `limit` is 10..=200, and HSS keeps at most 1000 tasks.
pub const TASK_PAGE_MIN: i64 = 10;
pub const MAX_TASKS: usize = 1000;
/// `rate_limit` of a scan task or policy, images per hour (0 = unlimited).
pub const MAX_RATE_LIMIT: i64 = 1000;
/// `scan_scope` bitmask: every risk type.
pub const SCAN_SCOPE_ALL: i64 = 0x7fff_ffff;
/// The same "all" as `list_image_scan_policy` reports it (a different constant, as documented).
pub const POLICY_SCOPE_ALL: i64 = 0x000f_ffff;
/// Largest time value the time-window filters accept (int64 ms).
pub const MAX_TIME_MS: i64 = i64::MAX;
/// `create_time` / `end_time` of `list_image_scan_task`.
pub const MAX_TASK_TIME_MS: i64 = 4_070_880_000_000;
/// Free pay-per-scan image scans a month.
pub const FREE_SCANS_PER_MONTH: i64 = 10;
